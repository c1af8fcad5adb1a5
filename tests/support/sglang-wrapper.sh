#!/bin/sh
# Stands in for `python` in SGLang's command line: `sglang-wrapper.sh -m sglang.launch_server ARGS`
# runs the stand-in engine's SGLang personality. FAKE_ENGINE_BIN names the fake-engine binary;
# without it, fake-engine is looked up next to this script's build tree and on PATH.
bin="${FAKE_ENGINE_BIN:-}"
if [ -z "$bin" ]; then
  for candidate in "$(dirname "$0")/../../build/fake-engine" "$(command -v fake-engine 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then bin="$candidate"; break; fi
  done
fi
if [ -z "$bin" ]; then
  echo "sglang-wrapper.sh: set FAKE_ENGINE_BIN to the fake-engine binary" >&2
  exit 127
fi
exec "$bin" python "$@"
