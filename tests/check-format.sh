#!/bin/sh
# Style check: every tracked C source and header follows the root .clang-format.
cd "$(dirname "$0")/.." || exit 1
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 77; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null)
[ -n "$files" ] || { echo "not a git checkout: nothing to check"; exit 77; }
# shellcheck disable=SC2086
if clang-format --dry-run -Werror $files; then
	echo "[PASS] style::clang_format"
else
	echo "[FAIL] style::clang_format: run clang-format -i on the files above"
	exit 1
fi
