# Debian package and manual pages. Included from the Makefile.
#   make deb        build/fwpair_<version>_<arch>.deb (dpkg-deb; version from git describe)
#   make deb-lint   the package through lintian (installs lintian if missing)
#   make man        build/man/fwpaird.8, fwpairctl.8, fwpair.toml.5
DEB_OUT ?= build

.PHONY: deb deb-lint deb-deps man

deb: ## build the Debian package build/fwpair_<version>_<arch>.deb
	@GO=$(GO) bash packaging/deb/build.sh $(DEB_OUT)

deb-deps: ## install lintian (only the deb targets need it)
	@dpkg-query -W -f='$${Status}' lintian 2>/dev/null | grep -q "install ok installed" || { \
		if [ "$$(id -u)" != 0 ]; then echo "need root to install lintian" >&2; exit 1; fi; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null || { \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null; }; }

deb-lint: deb-deps ## build the package and check it with lintian (no errors allowed)
	@deb=$$(GO=$(GO) bash packaging/deb/build.sh $(DEB_OUT)) && echo "$$deb" && lintian --fail-on error --info "$$deb"

man: build ## write the manual pages to build/man (generated from the flag and key definitions)
	@mkdir -p $(DEB_OUT)/man
	bin/fwpaird -manpage fwpaird.8 > $(DEB_OUT)/man/fwpaird.8
	bin/fwpaird -manpage fwpair.toml.5 > $(DEB_OUT)/man/fwpair.toml.5
	bin/fwpairctl manpage > $(DEB_OUT)/man/fwpairctl.8
