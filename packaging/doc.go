// Package packaging holds the Debian packaging of fwpair (packaging/deb:
// control template, maintainer scripts, copyright, build script) and its
// tests; it has no Go code of its own. `make deb` builds the package,
// `make deb-lint` checks it with lintian.
package packaging
