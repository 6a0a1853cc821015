#!/usr/bin/env bash
# `make lint` (clang-format check + cppcheck) is part of the suite, so formatting and static
# findings cannot drift: fix with `make fmt`, or mark a deliberate case inline.
set -eu
cd "${VL_ROOT:-$(dirname "$0")/../..}"
make -s lint
