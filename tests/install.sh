#!/bin/bash
# cmake --install: p2v, its manual pages, the bash completion, libimgfmt.so
# with its SONAME, imgfmt.h and imgfmt.pc, the inject plug-in.  The
# installed p2v runs from its prefix and does not link libguestfs; a C
# program builds against the library with pkg-config alone; every command
# and every option p2v --help shows is in a manual page; the completion
# completes commands, options and formats.
source "$(dirname "$0")/lib.sh"
need cmake pkg-config cc man readelf
: "${P2V_BUILD:?}"
D=$TMP/root
# into a staging root under the configured prefix, as packaging does
DESTDIR=$D cmake --install "$P2V_BUILD" >/dev/null || fail "cmake --install"
bin=$(find "$D" -path '*/bin/p2v' | head -n 1)
[ -n "$bin" ] || fail "no bin/p2v installed"
cd "$(dirname "$(dirname "$bin")")"
libdir=$(dirname "$(find . -name 'libimgfmt.so.0' | head -n 1)")
[ -n "$libdir" ] && [ "$libdir" != . ] || fail "no libimgfmt.so.0 installed: $(find . | sort)"
for f in bin/p2v include/imgfmt.h "$libdir"/pkgconfig/imgfmt.pc "$libdir"/libimgfmt.so \
	 "$libdir"/p2v/inject.so share/bash-completion/completions/p2v share/man/man1/p2v.1; do
	[ -e "$f" ] || fail "not installed: $f (installed: $(find . -type f | sort | tr '\n' ' '))"
done
echo "ok: installed $(find . -type f | wc -l) files under $libdir, bin, include, share"

# the library: versioned SONAME, only the functions imgfmt.h declares
[ "$(readelf -d "$libdir"/libimgfmt.so | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')" = libimgfmt.so.0 ] ||
	fail "SONAME: $(readelf -d "$libdir"/libimgfmt.so | grep SONAME)"
exported=$(readelf --dyn-syms -W "$libdir"/libimgfmt.so | awk '$7 != "UND" && $5 == "GLOBAL" && $4 == "FUNC" { sub(/@.*/, "", $8); print $8 }' | sort -u)
declared=$(grep -oE 'imgfmt_[a-z0-9_]+\(' include/imgfmt.h | tr -d '(' | sort -u)
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
[ -z "$extra" ] || fail "exported but not in imgfmt.h: $extra"
[ "$(echo "$exported" | grep -c .)" -ge 30 ] || fail "too few exports: $exported"

# the program runs from the prefix; libguestfs only through the plug-in
grep -q '^p2v [0-9]' <<<"$(./bin/p2v --version)" || fail "installed p2v --version: $(./bin/p2v --version 2>&1)"
used=$(ldd ./bin/p2v | sed -n 's/.*libimgfmt.so.0 => \([^ ]*\) .*/\1/p')
[ "$(realpath "$used")" = "$(realpath "$libdir"/libimgfmt.so.0)" ] ||
	fail "p2v does not use the installed library ($used): $(ldd ./bin/p2v)"
# (grep reads all its input: with pipefail, an early exit would fail ldd)
! grep "libguestfs\|libvirt" <<<"$(ldd ./bin/p2v)" >/dev/null || fail "p2v links libguestfs: $(ldd ./bin/p2v)"
grep libguestfs <<<"$(ldd "$libdir"/p2v/inject.so)" >/dev/null || fail "the plug-in does not link libguestfs"

# two lines of C, built with pkg-config alone
printf '#include <imgfmt.h>\nint main(void) { return imgfmt_driver_name(0) == 0; }\n' > "$TMP/two.c"
flags=$(PKG_CONFIG_PATH=$PWD/$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D pkg-config --cflags --libs imgfmt) ||
	fail "pkg-config imgfmt"
san= # a sanitizer build's library needs a program built the same way
! grep libasan <<<"$(ldd "$libdir"/libimgfmt.so)" >/dev/null || san=-fsanitize=address,undefined
cc $san -o "$TMP/two" "$TMP/two.c" $flags 2>"$TMP/cc.err" || fail "cc $flags: $(cat "$TMP/cc.err")"
LD_LIBRARY_PATH=$PWD/$libdir "$TMP/two" || fail "the two-line program"
echo "ok: pkg-config --cflags --libs imgfmt: $flags"

# manual pages: every command and every option p2v --help shows
pages=share/man/man1
commands=$(./bin/p2v --help | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p')
[ "$(echo "$commands" | wc -l)" -ge 10 ] || fail "p2v --help lists no commands"
for c in $commands; do
	page=
	for f in $pages/*.1; do # the page whose SYNOPSIS has "p2v CMD"
		syn=$(awk '/^\.SH/ { s = ($2 == "SYNOPSIS") } s' "$f")
		grep -q "^\\\\fBp2v $c\\\\fR" <<<"$syn" && page=$f
	done
	[ -n "$page" ] || fail "command '$c' is in no manual page's synopsis"
	opts=$(./bin/p2v "$c" --help 2>&1 | grep -oE '(^|[ [,])--?[a-zA-Z][a-zA-Z0-9-]*' | sed 's/^[ [,]//' | sort -u)
	text=$(MANWIDTH=200 man -l "$page" 2>/dev/null)
	for o in $opts; do
		grep -qE -- "(^|[ ,])$o([ ,=[]|$)" <<<"$text" || fail "p2v $c --help shows $o; $(basename "$page") does not"
	done
done
grep -q "^NAME" <<<"$(MANWIDTH=80 man -l $pages/p2v.1 2>/dev/null)" || fail "man p2v does not render"
echo "ok: $(echo $commands | wc -w) commands, each option in a manual page"

# completion: commands, options, formats
complete_at() { # complete_at WORDS...: COMPREPLY for the last word
	(
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		source share/bash-completion/completions/p2v
		COMP_WORDS[0]=$PWD/bin/p2v
		_p2v
		echo "${COMPREPLY[*]}"
	)
}
[ "$(complete_at p2v conv)" = convert ] || fail "completion of 'conv': $(complete_at p2v conv)"
grep -qw -- --target-is-zero <<<"$(complete_at p2v convert --tar)" || fail "completion of 'convert --tar'"
[ "$(complete_at p2v convert -O vh)" = "vhd vhdx" ] || fail "completion of -O: $(complete_at p2v convert -O vh)"
grep -qw -- --repair <<<"$(complete_at p2v check --)" || fail "completion of check's options"
echo "install: all passed"
