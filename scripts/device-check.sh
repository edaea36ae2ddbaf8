#!/usr/bin/env bash
# Kiln's GPU check (issue 13, item 7): the WebGPU provider against the CPU on one lent NVIDIA machine,
# in under 8 minutes, one JSON out. The README's "GPU check" section says how to run it with the device
# tool; scripts/device-check.ts says what each step measures.
#
#   bash scripts/device-check.sh --pack        here, once per commit: builds .device-check/ (the bundled
#                                              driver, Node, onnxruntime-node for linux-x64) and .gl/
#                                              (Debian's Vulkan loader), and prints the sizes that travel
#   bash scripts/device-check.sh               on the device: Vulkan set-up, then env, parity, model,
#                                              keystroke, train, each under its own timeout
#   bash scripts/device-check.sh --cpu-only    a dry run on a machine without a GPU (about 2 minutes on
#                                              2 cores): nothing is installed, candidate rows are
#                                              recorded as unavailable with the adapter's error
#   options: [--candidate webgpu|cuda|cpu] [--threads N] [--work DIR] [--keep] [--budget SECONDS] [--payload]
#            (--candidate cpu runs the candidate rows on the CPU, to test the script itself; the driver
#            runs from the repository's TypeScript where node_modules can run it, else from the payload;
#            --payload uses the payload even then, to test it)
#
# The JSON goes to $OUT/device-check.json when $OUT is set (the device tool's folder), else to
# bench-results/device-check.json; the steps' logs go beside it as device-check.log.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PAYLOAD_DIR="$ROOT/.device-check"
PAYLOAD="$PAYLOAD_DIR/kiln-device-check.tar.xz"
STEPS=(env parity model keystroke train)
declare -A STEP_TIMEOUT=([env]=40 [parity]=90 [model]=110 [keystroke]=100 [train]=90)

mode=run dry=0 keep=0 candidate=webgpu threads=0 work="" budget=450 use_payload=0
while [ $# -gt 0 ]; do
  case "$1" in
    --pack) mode=pack ;;
    --cpu-only | --dry) dry=1 ;;
    --candidate) candidate="$2"; shift ;;
    --threads) threads="$2"; shift ;;
    --work) work="$2"; shift ;;
    --budget) budget="$2"; shift ;;
    --keep) keep=1 ;;
    --payload) use_payload=1 ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "device-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '[device-check] %s\n' "$*" >&2; }
json_str() { # a shell string as a JSON string
  local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\t'/ }; printf '"%s"' "$s"
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# ---------- --pack: build what travels ----------

pack() {
  local missing=()
  [ -x node_modules/.bin/esbuild ] || missing+=("node_modules/.bin/esbuild (npm ci)")
  local ortbin=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
  [ -f "$ortbin/onnxruntime_binding.node" ] || missing+=("$ortbin (npm ci on linux-x64)")
  [ -d node_modules/onnxruntime-common/dist/cjs ] || missing+=("node_modules/onnxruntime-common")
  command -v xz >/dev/null || missing+=("xz")
  if [ ${#missing[@]} -gt 0 ]; then say "cannot pack, missing: ${missing[*]}"; exit 2; fi
  local node_bin; node_bin="$(command -v node)"
  if ldd "$node_bin" 2>/dev/null | grep -q 'libnode\|libuv\|libssl'; then
    say "warning: $node_bin links shared libraries a bare machine may lack; the payload's Node may not start there"
  fi

  local tmp; tmp="$(mktemp -d)"
  local stage="$tmp/kiln-device-check"
  mkdir -p "$stage/bin" "$stage/node_modules/onnxruntime-node/dist" "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux" "$stage/node_modules/onnxruntime-common/dist"
  say "bundling scripts/device-check.ts"
  node_modules/.bin/esbuild scripts/device-check.ts --bundle --platform=node --target=node20 --format=cjs \
    --external:onnxruntime-node --sourcemap --log-level=warning --outfile="$stage/device-check.js" || exit 1
  cp "$node_bin" "$stage/bin/node"
  # onnxruntime-node as the VSIX ships it (.vscodeignore): its JS, one platform's binary, onnxruntime-common's CJS build
  cp node_modules/onnxruntime-node/package.json "$stage/node_modules/onnxruntime-node/"
  cp node_modules/onnxruntime-node/dist/*.js "$stage/node_modules/onnxruntime-node/dist/"
  cp -r "$ortbin" "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux/"
  cp node_modules/onnxruntime-common/package.json "$stage/node_modules/onnxruntime-common/"
  cp -r node_modules/onnxruntime-common/dist/cjs "$stage/node_modules/onnxruntime-common/dist/"
  local dirty; dirty="$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)"
  cat >"$stage/MANIFEST.json" <<EOF
{
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$(git rev-parse HEAD 2>/dev/null || echo unknown)",
  "uncommittedChanges": $dirty,
  "node": "$("$node_bin" --version)",
  "onnxruntimeNode": "$(node -p "require('./node_modules/onnxruntime-node/package.json').version")"
}
EOF
  say "compressing (xz, a minute or two)"
  mkdir -p "$PAYLOAD_DIR"
  tar -C "$tmp" -cf - kiln-device-check | nice xz -6 -T2 >"$PAYLOAD.tmp" && mv "$PAYLOAD.tmp" "$PAYLOAD" || exit 1
  local unpacked; unpacked="$(du -sb "$stage" | cut -f1)"
  rm -rf "$tmp"

  # Debian's Vulkan loader for the device (the device README's recipe, the loader alone: Dawn needs nothing else)
  if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    say "fetching libvulkan1 into .gl/"
    mkdir -p .gl /tmp/amd64/partial
    local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
    if ! { apt-get "${o[@]}" update -qq >/dev/null && (cd .gl && apt-get "${o[@]}" download libvulkan1 >/dev/null); }; then
      say "warning: could not download libvulkan1; on the device, WebGPU will find no Vulkan loader unless the image has one"
    fi
  fi

  # what travels: tracked files, untracked files git does not ignore, and the carried paths
  local tracked untracked payload gl total
  tracked="$(git ls-files -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)"
  untracked="$(git ls-files -z --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)"
  payload="$(du -sb "$PAYLOAD_DIR" | cut -f1)"
  gl="$( (du -sb .gl 2>/dev/null || echo 0) | cut -f1)"
  total=$((tracked + ${untracked:-0} + payload + gl))
  say "payload $PAYLOAD: $(mib "$payload") ($(mib "$unpacked") unpacked); .gl: $(mib "$gl")"
  say "the working tree travels too: tracked $(mib "$tracked"), untracked not ignored $(mib "${untracked:-0}")"
  say "total that travels: $(mib "$total") of the device tool's 64 MiB"
  if [ "$total" -gt $((64 * 1048576)) ]; then say "TOO BIG for the device tool"; exit 1; fi
  say "run on the device with carry [\".device-check\", \".gl\"] and the command: bash scripts/device-check.sh"
}

if [ "$mode" = pack ]; then pack; exit $?; fi

# ---------- run ----------

if [ -n "${OUT:-}" ]; then json="$OUT/device-check.json"; logfile="$OUT/device-check.log"; else json="$ROOT/bench-results/device-check.json"; logfile="$ROOT/bench-results/device-check.log"; fi
mkdir -p "$(dirname "$json")"
: >"$logfile"
[ -n "$work" ] || work="${TMPDIR:-/tmp}/kiln-device-check.$$"
mkdir -p "$work/logs" "$work/parts"
start=$(date +%s)
deadline=$((start + budget))
exec 3>&2 2> >(tee -a "$logfile" >&3)
tee_pid=$!

# Writes a JSON by hand when the driver cannot run or its merge failed: the reason and any parts.
fallback_json() {
  local reason="$1"
  {
    printf '{\n  "kind": "kiln-device-check",\n  "version": 1,\n  "verdict": "fail",\n  "error": %s,\n' "$(json_str "$reason")"
    printf '  "setup": {"node": %s, "vulkan": %s, "runner": %s},\n' "$(json_str "$node_report")" "$(json_str "$vk_report")" "$(json_str "${runner_report:-none}")"
    printf '  "parts": {'
    local first=1 f
    for f in "$work"/parts/*.json; do
      [ -f "$f" ] || continue
      [ $first = 1 ] || printf ','
      first=0
      printf '\n    %s: ' "$(json_str "$(basename "$f" .json)")"
      cat "$f"
    done
    printf '\n  }\n}\n'
  } >"$json"
}

# what is here
sys_node="$(command -v node || true)"
sys_node_version="$( [ -n "$sys_node" ] && node --version 2>/dev/null || echo missing)"
say "system node: ${sys_node:-not on the PATH} ($sys_node_version)"
if [ -f node_modules/onnxruntime-node/package.json ]; then say "node_modules/onnxruntime-node: present"; else say "node_modules/onnxruntime-node: missing (not carried; the payload brings its own)"; fi
if [ -f "$PAYLOAD" ]; then say "payload: $PAYLOAD ($(mib "$(du -b "$PAYLOAD" | cut -f1)"))"; else say "payload: missing (.device-check/ not carried, or --pack not run)"; fi
if [ -d .gl ]; then say ".gl: $(ls .gl 2>/dev/null | tr '\n' ' ')"; else say ".gl: missing (no Vulkan loader packages carried)"; fi
node_report="system node: ${sys_node:-not on the PATH} ($sys_node_version)"

# Vulkan: the loader from .gl when the machine has none, and NVIDIA's driver manifest when no ICD is listed
vk=()
if [ "$dry" = 1 ]; then
  vk+=("dry run: no Vulkan set-up (nothing is installed on this machine)")
elif ! { ls /dev/nvidia[0-9]* /dev/dri/renderD* >/dev/null 2>&1 || nvidia-smi -L >/dev/null 2>&1; }; then
  vk+=("no GPU device (/dev/nvidia*, /dev/dri/renderD*): no Vulkan set-up")
else
  if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    vk+=("Vulkan loader already installed")
  elif ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do
      if dpkg -x "$f" / 2>>"$work/logs/setup.log"; then vk+=("unpacked $(basename "$f")"); else vk+=("dpkg -x $(basename "$f") failed"); fi
    done
    ldconfig 2>>"$work/logs/setup.log"
    if ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then vk+=("loader now in the ldconfig cache"); else vk+=("loader still missing after unpacking"); fi
  else
    vk+=("no Vulkan loader installed and no .gl/*.deb carried")
  fi
  icds="$(ls /etc/vulkan/icd.d/*.json /usr/share/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json 2>/dev/null | tr '\n' ' ')"
  nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
    vk+=("driver manifest given: ${VK_DRIVER_FILES:-$VK_ICD_FILENAMES}")
  elif [ -n "$icds" ]; then
    vk+=("driver manifests: $icds")
  elif [ -f "$nv_icd" ]; then
    export VK_DRIVER_FILES="$nv_icd"
    vk+=("VK_DRIVER_FILES=$nv_icd")
  else
    vk+=("no Vulkan driver manifest found")
  fi
fi
vk_report="$(IFS=';'; echo "${vk[*]}")"
say "vulkan: $vk_report"

# the runner: the repository's TypeScript through tsx where node_modules can run it (never a stale
# bundle), else the payload's bundle and Node (the device: no Node, no node_modules)
runner=()
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
from_source=0
[ "$use_payload" = 0 ] && [ -n "$sys_node" ] && [ "$(node_major node)" -ge 20 ] && [ -f node_modules/onnxruntime-node/package.json ] && [ -d node_modules/tsx ] && from_source=1
if [ $from_source = 1 ]; then
  runner=(node --import tsx scripts/device-check.ts); export KILN_DC_NODE_SOURCE="system ($sys_node_version)"
  runner_report="repository TypeScript through tsx"
elif [ -f "$PAYLOAD" ]; then
  mkdir -p "$work/payload"
  if command -v xz >/dev/null; then
    tar -C "$work/payload" -xJf "$PAYLOAD"
  else
    python3 -c 'import sys, tarfile; t = tarfile.open(sys.argv[1]); t.extractall(sys.argv[2], **({"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}))' "$PAYLOAD" "$work/payload"
  fi || say "could not unpack $PAYLOAD"
  p="$work/payload/kiln-device-check"
  if [ -f "$p/device-check.js" ]; then
    if [ "$(node_major "$p/bin/node")" -ge 20 ]; then
      runner=("$p/bin/node" --enable-source-maps "$p/device-check.js"); export KILN_DC_NODE_SOURCE="payload ($("$p/bin/node" --version))"
    elif [ -n "$sys_node" ] && [ "$(node_major node)" -ge 20 ]; then
      runner=(node --enable-source-maps "$p/device-check.js"); export KILN_DC_NODE_SOURCE="system ($sys_node_version; the payload's Node did not start)"
    fi
    runner_report="payload bundle $p/device-check.js"
  fi
fi
if [ ${#runner[@]} -eq 0 ]; then
  missing="no way to run the driver: "
  [ -f "$PAYLOAD" ] || missing+="the payload (.device-check/kiln-device-check.tar.xz: run 'bash scripts/device-check.sh --pack' and carry .device-check); "
  [ -n "$sys_node" ] && [ "$(node_major node)" -ge 20 ] || missing+="Node >= 20 on the PATH ($sys_node_version); "
  [ -f node_modules/onnxruntime-node/package.json ] || missing+="node_modules/onnxruntime-node; "
  [ -d node_modules/tsx ] || missing+="node_modules/tsx; "
  say "$missing"
  fallback_json "$missing"
  [ "$keep" = 1 ] || rm -rf "$work"
  say "JSON: $json"
  exit 2
fi
say "runner: ${runner[*]} ($KILN_DC_NODE_SOURCE)"
export KILN_DC_RUNNER="$runner_report" KILN_DC_SYSTEM_NODE="${sys_node:-not on the PATH} ($sys_node_version)" KILN_DC_VULKAN_SETUP="$vk_report"

common=(--work "$work" --candidate "$candidate" --threads "$threads")
[ "$dry" = 1 ] && common+=(--dry)
have_timeout=0; command -v timeout >/dev/null && have_timeout=1
[ $have_timeout = 1 ] || say "warning: no 'timeout' command; steps run without a time limit"
exits=""
for step in "${STEPS[@]}"; do
  left=$((deadline - $(date +%s) - 25)) # room for the merge
  t=${STEP_TIMEOUT[$step]}
  [ "$t" -gt "$left" ] && t=$left
  if [ "$t" -lt 10 ]; then
    say "== $step: skipped (the ${budget} s budget is spent)"
    exits+="$step=125:0 "
    continue
  fi
  say "== $step (timeout ${t} s)"
  t0=$(date +%s)
  cmd=("${runner[@]}" "$step" "${common[@]}" --budget-s $((t * 3 / 4)))
  [ $have_timeout = 1 ] && cmd=(timeout -k 10 "$t" "${cmd[@]}")
  "${cmd[@]}" 2>&1 | tee "$work/logs/$step.log" >&2
  rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && say "$step: timed out after ${t} s (what it recorded is kept)"
  exits+="$step=$rc:$(($(date +%s) - t0)) "
done

say "== merge"
cmd=("${runner[@]}" merge "${common[@]}" --out "$json" --exits "$exits")
[ $have_timeout = 1 ] && cmd=(timeout 30 "${cmd[@]}")
if ! "${cmd[@]}"; then
  say "merge failed: writing the parts as they are"
  fallback_json "merge failed (step exits: $exits)"
fi
[ "$keep" = 1 ] && say "work folder kept: $work" || rm -rf "$work"
say "total $(($(date +%s) - start)) s"
say "JSON: $json"
exec 2>&3
wait "$tee_pid" 2>/dev/null || true
echo "$json"
