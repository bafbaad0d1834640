#!/usr/bin/env bash
# render-pictures.sh -- draw the pictures in docs/ from their text sources.
#
# Usage: scripts/render-pictures.sh           (make docs: redraw them all)
#        scripts/render-pictures.sh --check   (make test: are they current?)
#
# Every docs/NAME.dot (graphviz: boxes and arrows) and docs/NAME.msc
# (mscgen: sequence charts) becomes docs/NAME.svg, which is committed so
# that the documents show it without either program. Each SVG ends with
# a comment giving the SHA-256 of the source it was drawn from:
#
#   <!-- drawn from docs/NAME.dot, sha256 HEX -->
#
# --check compares that hash with the source as it is now, so it needs
# neither program and does not depend on file times (a clone sets them
# all alike): a source changed without redrawing, a picture without its
# source, or a source without its picture is a problem, printed one per
# line. Exits 0 when every picture is current, 1 otherwise.
#
# PTTH_DOCS_ROOT names another tree to look at (the checker's own test).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
root=${PTTH_DOCS_ROOT:-.}
check=0
[[ ${1:-} == --check ]] && check=1

problems=0
problem()
{
	echo "$1"
	problems=$((problems + 1))
}

# draw SRC OUT: the SVG of one source, on standard output.
draw()
{
	case $1 in
	*.dot) dot -Tsvg "$1" ;;
	*.msc) mscgen -T svg -o - "$1" ;;
	esac
}

shopt -s nullglob
for src in "$root"/docs/*.dot "$root"/docs/*.msc; do
	name=${src#"$root"/}
	svg=${src%.*}.svg
	hash=$(sha256sum "$src" | cut -d' ' -f1)
	stamp="<!-- drawn from $name, sha256 $hash -->"
	if [[ $check -eq 1 ]]; then
		if [[ ! -f $svg ]]; then
			problem "${svg#"$root"/}: missing; run make docs"
		elif [[ $(tail -n 1 "$svg") != "$stamp" ]]; then
			problem "${svg#"$root"/}: older than $name; run make docs"
		fi
		continue
	fi
	# A comment may follow the root element (XML's "Misc"), so the stamp
	# goes last, where it disturbs neither program's prolog.
	if ! { draw "$src" && echo "$stamp"; } >"$svg.tmp"; then
		rm -f "$svg.tmp"
		problem "$name: drawing failed"
		continue
	fi
	mv "$svg.tmp" "$svg"
	echo "render-pictures: drew ${svg#"$root"/}"
done

for svg in "$root"/docs/*.svg; do
	base=${svg%.svg}
	if grep -q '^<!-- drawn from ' "$svg" && [[ ! -f $base.dot && ! -f $base.msc ]]; then
		problem "${svg#"$root"/}: its source is gone"
	fi
done

[[ $problems -eq 0 ]]
