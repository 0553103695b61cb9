#!/bin/sh
# CPU profile of a WolfScale leader under 64 clients of single-row inserts (issue 16).
#
#   scripts/profile-leader.sh [OUT_DIR] [SECONDS]      (default: target/profile, 10)
#
# Runs `wolfscale-bench profile` (release build; `cargo build --release --bins` first),
# which records the leader's process with `perf record -F 499 --call-graph dwarf,32768`
# (32 KiB stack copies: the default 8 KiB cut most async stacks short; set CALL_GRAPH to
# change it), then writes next to the recording:
#   self.txt      top symbols by self time      (perf report --no-children)
#   children.txt  top symbols by inclusive time (perf report --children)
#   folded.txt    folded stacks "thread;root;...;leaf count", heaviest first, for any
#                 flame-graph renderer
# Needs Debian's linux-perf and kernel.perf_event_paranoid <= 2 (user-space samples of
# our own child processes).
set -eu
out=${1:-target/profile}
seconds=${2:-10}
bench=${WOLFSCALE_BENCH:-target/release/wolfscale-bench}
mkdir -p "$out"
"$bench" profile --out "$out" --seconds "$seconds" --dir "${BENCH_DIR:-target/bench-data}" \
    --call-graph "${CALL_GRAPH:-dwarf,32768}"
data="$out/perf.data"
perf report -i "$data" --no-children --stdio -g none --sort symbol --percent-limit 0.5 \
    >"$out/self.txt" 2>/dev/null
perf report -i "$data" --children --stdio -g none --sort symbol --percent-limit 2 \
    >"$out/children.txt" 2>/dev/null
# perf script prints one block per sample: a header line, then one frame per line from
# the leaf to the root, then a blank line. Fold each block to "thread;root;...;leaf".
perf script -i "$data" -F comm,ip,sym 2>/dev/null | awk '
    function flush(   s, i) {
        if (n == 0) return
        s = comm
        for (i = n; i >= 1; i--) s = s ";" frame[i]
        count[s]++
        n = 0
    }
    /^[^ \t]/ { flush(); comm = $1; next }
    /^[ \t]*$/ { flush(); next }
    {
        line = $0
        sub(/^[ \t]*[0-9a-f]+ /, "", line)
        sub(/ \([^()]*\)$/, "", line)
        gsub(/;/, ":", line)
        frame[++n] = line
    }
    END { flush(); for (s in count) print count[s] "\t" s }
' | sort -k1,1nr | awk -F'\t' '{ print $2, $1 }' >"$out/folded.txt"
echo "wrote $out/self.txt, $out/children.txt, $out/folded.txt"
head -n 40 "$out/self.txt" | grep -v '^#' | grep -v '^$' | head -n 25
