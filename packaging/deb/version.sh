#!/bin/sh
# Prints a Debian version for the checked-out tree, from git describe:
#   tag v1.2.3, 4 commits after:  1.2.3+git4.gabc1234
#   exactly on tag v1.2.3:         1.2.3
#   no tag:                        0.0~git20261130201423.abc1234
# ".dirty" is appended for uncommitted changes. No hyphen: a native
# package. Versions of later commits sort higher.
set -eu
dirty=""
if ! git diff --quiet HEAD 2>/dev/null; then
	dirty=".dirty"
fi
if d=$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
	# v1.2.3-4-gabc1234
	tag=${d%-*-g*}
	rest=${d#"$tag"-}
	n=${rest%%-*}
	hash=${rest#*-}
	v=${tag#v}
	v=$(printf '%s' "$v" | tr -- '-_' '~~')
	if [ "$n" = 0 ]; then
		echo "$v$dirty"
	else
		echo "$v+git$n.$hash$dirty"
	fi
	exit 0
fi
when=$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null || date -u +%Y%m%d%H%M%S)
hash=$(git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
echo "0.0~git$when.$hash$dirty"
