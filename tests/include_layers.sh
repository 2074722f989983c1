#!/bin/sh
# Fails when a file includes a module above its own (docs/design.md, Code
# map): base/ includes only base/; repo/ only base/ and repo/; agent/,
# restore/ and replicate/ only those two and their own; serve/ also
# restore/; daemon/ the wings it schedules; cli/ anything.
set -eu
cd "$(dirname "$0")/.."
bad=0
check() { # DIR ALLOWED-REGEX
	for f in $(find "$1" -name '*.[ch]'); do
		grep -Hn '^#include "[a-z_]*/' "$f" | grep -Ev "#include \"($2)/" && bad=1
	done
	return 0
}
check base 'base'
check repo 'base|repo|transport'
for wing in agent restore replicate; do
	check $wing "base|repo|$wing"
done
check serve 'base|repo|restore|serve'
check daemon 'base|repo|agent|restore|replicate|serve|daemon'
[ $bad = 0 ] && echo "include_layers: no file includes a module above its own"
exit $bad
