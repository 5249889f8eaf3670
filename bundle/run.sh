#!/usr/bin/env bash
# Replays this bundle: boots each bundled kernel in QEMU with the arguments
# recorded by `cargo xtask bundle`, prints the before/after table from the
# new console logs and compares every result with the bundled run.
#
# Needs only bash (>= 5), coreutils and qemu-system-x86_64: no awk, sed,
# grep or python, so it runs on a machine that has nothing else.
#
# Exit status: 0 the table is the bundled one and no run had a problem;
# 1 a result differs from the bundled run, or a run timed out, panicked,
# oopsed or stopped early; 2 the bundle or this machine cannot run it.
set -uo pipefail
shopt -s extglob

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || exit 2
QEMU=${QEMU:-qemu-system-x86_64}
PANIC_GRACE_MS=10000
# A failure's reason token (contract crate): a letter, then up to 39 of [A-Za-z0-9_.<>=+-].
REASON_TOKEN='^[A-Za-z][A-Za-z0-9_.<>=+-]{0,39}$'

usage() {
    cat <<EOF
usage: ./run.sh [--accel auto|kvm|tcg] [--timeout SECS] [--out DIR]
       ./run.sh --shell vanilla|patched [--accel auto|kvm|tcg]

Without --shell: boot every bundled kernel with the validator as PID 1,
print the table and compare it with the bundled run (console logs go to
DIR, default ./replay). --shell: an interactive busybox shell in that
kernel (\`validator\` runs the suite; \`reboot -f\` or Ctrl-A X leaves).
--accel auto (default) uses KVM only if a KVM guest kernel really prints
within the recorded deadline, else TCG, and says why.
Set QEMU=/path/to/qemu-system-x86_64 to use another QEMU.
EOF
}

die() {
    echo "run.sh: $*" >&2
    exit 2
}

note() {
    echo "note: $*" >&2
}

# --- the bundle's recorded data ------------------------------------------

# Reads one-value-per-line file $2 into array $1 (e.g. recorded QEMU args).
# shellcheck disable=SC2034 # a nameref: the caller reads it
read_lines() {
    local -n into=$1
    [[ -f $2 ]] || die "the bundle has no $2 (is this an unpacked bundle?)"
    mapfile -t into <"$2"
}


# shellcheck disable=SC2034 # a nameref: the caller reads it
read_value() {
    local -n value_into=$1
    [[ -f $2 ]] || die "the bundle has no $2 (is this an unpacked bundle?)"
    IFS= read -r value_into <"$2"
}

# manifest: key=value lines written by xtask.
declare -A MANIFEST
load_manifest() {
    local key value
    [[ -f $HERE/manifest ]] || die "no manifest next to run.sh: run it from an unpacked bundle"
    while IFS='=' read -r key value; do
        [[ -z $key || $key == '#'* ]] && continue
        MANIFEST[$key]=$value
    done <"$HERE/manifest"
    local variant
    for variant in ${MANIFEST[variants]:-}; do
        [[ $variant == vanilla || $variant == patched ]] ||
            die "manifest: unknown variant '$variant' (vanilla or patched)"
    done
    [[ -n ${MANIFEST[variants]:-} ]] || die "manifest: no variants= line"
}

# scenarios.tsv: id, then per kernel (vanilla, patched) the expectation as
# parse_result spells results (pass, skip or fail:<reason>) and as people
# read it (`fail (EINVAL)`, `skip (why)`), in the declared order.
SCENARIOS=()
declare -A EXPECTED EXPECTED_READ
load_scenarios() {
    local id vanilla patched vanilla_read patched_read expected
    [[ -f $HERE/scenarios.tsv ]] || die "the bundle has no scenarios.tsv"
    while IFS=$'\t' read -r id vanilla patched vanilla_read patched_read _; do
        [[ -z $id || $id == '#'* ]] && continue
        for expected in "$vanilla" "$patched"; do
            [[ $expected == @(pass|skip) || ( $expected == fail:* && ${expected#fail:} =~ $REASON_TOKEN ) ]] ||
                die "scenarios.tsv: $id expects '$expected' (pass, skip or fail:<reason>)"
        done
        SCENARIOS+=("$id")
        EXPECTED[vanilla/$id]=$vanilla EXPECTED_READ[vanilla/$id]=${vanilla_read:-$vanilla}
        EXPECTED[patched/$id]=$patched EXPECTED_READ[patched/$id]=${patched_read:-$patched}
    done <"$HERE/scenarios.tsv"
    ((${#SCENARIOS[@]})) || die "scenarios.tsv lists no scenario"
}

# --- QEMU -------------------------------------------------------------------

QEMU_VERSION=()
find_qemu() {
    local first
    { read -r first <<<"$("$QEMU" --version 2>/dev/null)"; } ||
        die "cannot run $QEMU (install qemu-system-x86, or set QEMU=/path/to/qemu-system-x86_64)"
    [[ $first =~ version\ ([0-9]+)\.([0-9]+)(\.([0-9]+))? ]] ||
        die "cannot read a version from \`$first\`"
    QEMU_VERSION=("${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[4]:-0}")
}

# The recorded -accel/-cpu arguments for accelerator $2, into array $1.
# QEMU < 9 gets the TCG arguments with SMAP off: it performs the stack
# accesses of a far return that changes CS bitness with supervisor rights,
# and with SMAP the guest oopses.
accel_args() {
    # shellcheck disable=SC2034 # a nameref: the caller reads it
    local -n accel_into=$1
    case $2 in
    kvm) read_lines accel_into "$HERE/qemu/accel-kvm" ;;
    tcg) if ((QEMU_VERSION[0] < 9)); then
        read_lines accel_into "$HERE/qemu/accel-tcg-qemu-before-9"
    else
        read_lines accel_into "$HERE/qemu/accel-tcg"
    fi ;;
    esac
}

# The value following $1 in the remaining arguments (e.g. the -cpu model).
arg_after() {
    local want=$1
    shift
    while (($#)); do
        [[ $1 == "$want" ]] && { echo "${2:-}"; return; }
        shift
    done
}

# A line the guest kernel itself printed (firmware banners do not count).
is_kernel_line() {
    [[ $1 == "Linux version "* || $1 =~ ^\[\ *[0-9]+\.[0-9]+\]\  ]]
}

# The kernel problem a console line reports, if any, into PROBLEM (the
# harness' list; a printk timestamp may come first). No subshell: it runs
# on every console line.
kernel_problem() {
    local text=${1##+([[:space:]])}
    if [[ $text =~ ^\[\ *[0-9.]+\]\ *(.*)$ ]]; then
        text=${BASH_REMATCH[1]}
    fi
    case $text in
    "Kernel panic - not syncing"*) PROBLEM=panic ;;
    "Oops:"* | "Unable to handle kernel"*) PROBLEM=oops ;;
    "BUG:"* | "kernel BUG at"*) PROBLEM=BUG ;;
    "WARNING:"*) PROBLEM=WARNING ;;
    "general protection fault"*) PROBLEM="general protection fault" ;;
    *) PROBLEM= ; return 1 ;;
    esac
}

now_ms() {
    local t=$EPOCHREALTIME
    NOW_MS=$((${t%.*} * 1000 + 10#${t#*.} / 1000))
}

# --- booting ------------------------------------------------------------------

QEMU_PID=
stop_qemu() {
    if [[ -n $QEMU_PID ]]; then
        kill "$QEMU_PID" 2>/dev/null
        wait "$QEMU_PID" 2>/dev/null
        QEMU_PID=
    fi
}

# Boots QEMU with arguments "$@" (after mode, log and seconds), the serial
# console appended to the log, and watches it: see watch_guest.
boot_guest() {
    local mode=$1 log=$2 seconds=$3
    shift 3
    local -a command=("$QEMU" "$@" -serial stdio)
    echo "# ${command[*]}" >"$log" || die "cannot write $log"
    "${command[@]}" </dev/null >>"$log" 2>"${log%.log}.qemu-stderr" &
    QEMU_PID=$!
    watch_guest "$mode" "$log" "$seconds"
}

# Follows the console log as QEMU writes it, until QEMU exits, the deadline
# passes, QEMU outlives a kernel panic by PANIC_GRACE_MS, or (mode probe)
# the guest kernel prints. Sets ENDING: exited:<status>, timeout,
# panic-hung, kernel-printed or silent.
watch_guest() {
    local mode=$1 log=$2 seconds=$3 fd chunk line='' partial='' printed='' panic_at='' gone=
    exec {fd}<"$log" || die "cannot read $log"
    now_ms
    local deadline=$((NOW_MS + seconds * 1000))
    while :; do
        if IFS= read -r -u "$fd" chunk; then
            line=${partial}${chunk%$'\r'}
            partial=
            is_kernel_line "$line" && printed=1
            [[ $mode == probe && -n $printed ]] && { stop_qemu; ENDING=kernel-printed; break; }
            if [[ -z $panic_at ]] && kernel_problem "$line" && [[ $PROBLEM == panic ]]; then
                now_ms
                panic_at=$NOW_MS
            fi
            continue
        fi
        partial+=$chunk
        if [[ -n $gone ]]; then
            wait "$QEMU_PID"
            ENDING=exited:$?
            QEMU_PID=
            break
        fi
        # Read once more after QEMU is gone: its last lines may be unread.
        kill -0 "$QEMU_PID" 2>/dev/null || { gone=1; continue; }
        now_ms
        if ((NOW_MS >= deadline)); then
            stop_qemu
            ENDING=timeout
            [[ $mode == probe ]] && ENDING=silent
            break
        fi
        if [[ -n $panic_at ]] && ((NOW_MS >= panic_at + PANIC_GRACE_MS)); then
            stop_qemu
            ENDING=panic-hung
            break
        fi
        sleep 0.05
    done
    exec {fd}<&-
}

# --- the accelerator ------------------------------------------------------------

# The harness' rule: KVM only if a KVM guest kernel really prints within the
# recorded deadline (firmware output does not count; QEMU exiting counts as
# failure), else TCG, saying why. Sets ACCEL and ACCEL_ARGS.
choose_accel() {
    if [[ $ACCEL_OPT != tcg ]] && kvm_works; then
        ACCEL=kvm
    elif [[ $ACCEL_OPT == kvm ]]; then
        die "--accel kvm: $WHY_NOT; use --accel tcg"
    else
        [[ $ACCEL_OPT == auto ]] && note "KVM is not usable here: $WHY_NOT; using TCG"
        ACCEL=tcg
    fi
    accel_args ACCEL_ARGS "$ACCEL"
    if [[ $ACCEL == tcg ]] && ((QEMU_VERSION[0] < 9)); then
        note "QEMU ${QEMU_VERSION[0]}.${QEMU_VERSION[1]}.${QEMU_VERSION[2]} under TCG: using -cpu $(arg_after -cpu "${ACCEL_ARGS[@]}") (far-return bug of QEMU < 9 with SMAP)"
    fi
}

# One short KVM boot of the first bundled kernel; sets WHY_NOT when it fails.
kvm_works() {
    if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
        WHY_NOT="/dev/kvm cannot be opened read-write"
        return 1
    fi
    local -a kvm
    accel_args kvm kvm
    local log=$OUT/kvm-probe.log variant=${VARIANTS[0]}
    # (stderr: bash's own "Aborted" job message; QEMU's is in the log's .qemu-stderr)
    boot_guest probe "$log" "$KVM_DEADLINE" "${COMMON[@]}" "${kvm[@]}" \
        -kernel "$HERE/$variant/vmlinux" -initrd "$HERE/initramfs/validator.cpio" \
        -append "$APPEND_RUN" 2>/dev/null
    local why=
    case $ENDING in
    kernel-printed) return 0 ;;
    silent) WHY_NOT="the KVM guest kernel printed nothing in ${KVM_DEADLINE}s" ;;
    *)
        IFS= read -r why <"${log%.log}.qemu-stderr"
        local status=${ENDING#exited:}
        ((status > 128)) && status="killed by signal $((status - 128))" || status="exit status $status"
        WHY_NOT="QEMU stopped ($status) before the KVM guest kernel printed${why:+: $why}"
        ;;
    esac
    return 1
}

# --- KTAP -------------------------------------------------------------------------

declare -A RESULT SKIP_WHY DIAG PLAN COUNT FINISHED SAW_VERSION STARTED KPROBLEMS

trim() {
    local s=${1##+([[:space:]])}
    TRIMMED=${s%%+([[:space:]])}
}

# Parses the KTAP v1 and the kernel problems in console log $2 under label
# $1, as the harness does: indented (subtest) lines and kernel noise are
# ignored; `# id: text` lines are diagnostics.
parse_console() {
    local label=$1 line
    PLAN[$label]='' COUNT[$label]=0 FINISHED[$label]='' SAW_VERSION[$label]='' STARTED[$label]='' KPROBLEMS[$label]=''
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%$'\r'}
        if kernel_problem "$line"; then
            trim "$line"
            KPROBLEMS[$label]+="kernel: $TRIMMED"$'\n'
        fi
        [[ $line == [[:space:]]* ]] && continue
        case $line in
        "KTAP version 1"*) SAW_VERSION[$label]=1 ;;
        1..*)
            trim "${line#1..}"
            [[ $TRIMMED =~ ^[0-9]+$ ]] && PLAN[$label]=$TRIMMED || PLAN[$label]=
            ;;
        '#'*) parse_comment "$label" "${line#\#}" ;;
        *) parse_result "$label" "$line" ;;
        esac
    done <"$2"
}

parse_comment() {
    local label=$1
    trim "$2"
    local comment=$TRIMMED
    if [[ $comment == "start "* ]]; then
        trim "${comment#start }"
        STARTED[$label]=$TRIMMED
    elif [[ $comment == Totals:* ]]; then
        FINISHED[$label]=1
    elif [[ $comment =~ ^([A-Za-z0-9_-]+):\ (.*)$ ]]; then
        DIAG[$label/${BASH_REMATCH[1]}]+="  # ${BASH_REMATCH[2]}"$'\n'
    fi
}

# `ok 3 id`, `not ok 4 id # reason=EINVAL`, `ok 5 id # SKIP why`, read as
# the contract crate does: a result is pass, skip, or fail:<reason> (a
# failure that names no valid reason is fail:unnamed).
parse_result() {
    local label=$1 result=pass
    [[ $2 =~ ^(not\ )?ok\ ([0-9]+)(\ (.*))?$ ]] || return
    local failed=${BASH_REMATCH[1]} rest=${BASH_REMATCH[4]} data=''
    [[ $rest == *'#'* ]] && data=${rest#*#}
    trim "$data"
    data=$TRIMMED
    trim "${rest%%#*}"
    local id=$TRIMMED
    if [[ ${data:0:4} == [Ss][Kk][Ii][Pp] ]]; then
        result=skip
        trim "${data:4}"
        [[ -v SKIP_WHY[$label/$id] ]] || SKIP_WHY[$label/$id]=$TRIMMED
    elif [[ -n $failed ]]; then
        result=fail:unnamed
        local word
        for word in $data; do
            [[ $word == reason=* ]] || continue
            [[ ${word#reason=} =~ $REASON_TOKEN ]] && result=fail:${word#reason=}
            break
        done
    fi
    [[ -v RESULT[$label/$id] ]] || RESULT[$label/$id]=$result
    COUNT[$label]=$((COUNT[$label] + 1))
    [[ ${STARTED[$label]} == "$id" ]] && STARTED[$label]=''
}

complete() {
    [[ -n ${SAW_VERSION[$1]} && -n ${FINISHED[$1]} && ${PLAN[$1]} == "${COUNT[$1]}" ]]
}

# Why run $1 (which ended with $2) cannot be trusted, one per line, into PROBLEMS.
run_problems() {
    local label=$1 ending=$2 running=
    [[ -n ${STARTED[$label]} ]] && running=" while scenario ${STARTED[$label]} was running"
    PROBLEMS=${KPROBLEMS[$label]}
    case $ending in
    timeout) PROBLEMS+="timed out after ${TIMEOUT}s$running; QEMU was killed"$'\n' ;;
    panic-hung) PROBLEMS+="QEMU did not exit $((PANIC_GRACE_MS / 1000))s after the kernel panic$running; QEMU was killed"$'\n' ;;
    *) complete "$label" ||
        PROBLEMS+="the guest stopped before the validator finished$running (${COUNT[$label]} of ${PLAN[$label]:-?} results)"$'\n' ;;
    esac
}

# --- tables -----------------------------------------------------------------------

# How a result reads in the table (CELL: `FAIL (EINVAL)`) and elsewhere
# (READ: `fail (EINVAL)`, `skip (why)`, as the contract displays it); $2 is
# a skip's reason.
cell() {
    case ${1:-} in
    pass) CELL=pass READ=pass ;;
    fail:*) CELL="FAIL (${1#fail:})" READ="fail (${1#fail:})" ;;
    skip) CELL=skip READ="skip${2:+ ($2)}" ;;
    *) CELL="(none)" READ="(none)" ;;
    esac
}

# Prints an aligned table as the harness does: $1 columns, then the header
# cells and the rows' cells, row after row; two spaces between columns.
render_table() {
    local columns=$1
    shift
    local -a cells=("$@") widths=()
    local i c
    for ((i = 0; i < ${#cells[@]}; i++)); do
        c=$((i % columns))
        ((${#cells[i]} > ${widths[c]:-0})) && widths[c]=${#cells[i]}
    done
    local rule=() line=
    for ((c = 0; c < columns; c++)); do
        printf -v line '%*s' "${widths[c]}" ''
        rule+=("${line// /-}")
    done
    print_row "$columns" widths "${cells[@]:0:columns}"
    print_row "$columns" widths "${rule[@]}"
    for ((i = columns; i < ${#cells[@]}; i += columns)); do
        print_row "$columns" widths "${cells[@]:i:columns}"
    done
}

print_row() {
    local columns=$1 c out='' padded
    local -n row_widths=$2
    shift 2
    for ((c = 0; c < columns; c++)); do
        if ((c < columns - 1)); then
            printf -v padded '%-*s  ' "${row_widths[c]}" "$1"
        else
            padded=$1
        fi
        out+=$padded
        shift
    done
    echo "${out%%+( )}"
}

# The compact table of the runs labelled $1/<variant> (scenario, what each
# kernel did, verdict), into TABLE (cells) and UNEXPECTED (rows not as
# declared).
build_table() {
    local prefix=$1 id variant ok
    TABLE=(scenario "${VARIANTS[@]}" verdict)
    UNEXPECTED=0
    for id in "${SCENARIOS[@]}"; do
        TABLE+=("$id")
        ok=1
        for variant in "${VARIANTS[@]}"; do
            cell "${RESULT[$prefix/$variant/$id]:-}"
            TABLE+=("$CELL")
            [[ ${RESULT[$prefix/$variant/$id]:-} == "${EXPECTED[$variant/$id]}" ]] || ok=''
        done
        if [[ -n $ok ]]; then
            TABLE+=("as expected")
        else
            TABLE+=(UNEXPECTED)
            UNEXPECTED=$((UNEXPECTED + 1))
        fi
    done
}

# What was compared, as the harness' table header says it.
print_header() {
    local series=${MANIFEST[series_hash]:0:12}
    echo "Linux ${MANIFEST[linux_version]} (${MANIFEST[source_provider]} ${MANIFEST[source_origin]})"
    echo "${MANIFEST[patches]} patches (series ${series:-empty}), config ${MANIFEST[config_hash]:0:12}"
    echo "QEMU ${QEMU_VERSION[0]}.${QEMU_VERSION[1]}.${QEMU_VERSION[2]} ${ACCEL^^} -cpu $(arg_after -cpu "${ACCEL_ARGS[@]}")"
}

# --- the replay -------------------------------------------------------------------

declare -A ENDINGS
replay() {
    local variant
    for variant in "${VARIANTS[@]}"; do
        parse_console "bundled/$variant" "$HERE/$variant/console.log"
        mkdir -p "$OUT/$variant" || die "cannot create $OUT/$variant"
        now_ms
        local started=$NOW_MS
        boot_guest run "$OUT/$variant/console.log" "$TIMEOUT" "${COMMON[@]}" "${ACCEL_ARGS[@]}" \
            -kernel "$HERE/$variant/vmlinux" -initrd "$HERE/initramfs/validator.cpio" \
            -append "$APPEND_RUN"
        now_ms
        ENDINGS[$variant]=$ENDING
        parse_console "replay/$variant" "$OUT/$variant/console.log"
        printf '%s kernel: %s results in %d.%01ds (%s)\n' "$variant" "${COUNT[replay/$variant]}" \
            $(((NOW_MS - started) / 1000)) $(((NOW_MS - started) % 1000 / 100)) "$ENDING" >&2
    done
}

# The diagnostics of every scenario that did not do what it declares.
print_diagnostics() {
    local variant=$1 id key
    for id in "${SCENARIOS[@]}"; do
        key=replay/$variant/$id
        [[ -z ${RESULT[$key]:-} || ${RESULT[$key]} == "${EXPECTED[$variant/$id]}" ]] && continue
        cell "${RESULT[$key]}" "${SKIP_WHY[$key]:-}"
        printf '\n%s on %s: %s (expected %s)\n' "$id" "$variant" "$READ" "${EXPECTED_READ[$variant/$id]}"
        printf '%s' "${DIAG[$key]:-}"
    done
}

# A run's problems with the console tail, so no log needs opening.
print_problems() {
    local variant=$1 log=$OUT/$1/console.log problem
    run_problems "replay/$variant" "${ENDINGS[$variant]}"
    [[ -z $PROBLEMS ]] && return 1
    printf '\n%s kernel: the run had problems:\n' "$variant"
    while IFS= read -r problem; do echo "  - $problem"; done <<<"${PROBLEMS%$'\n'}"
    echo "  console tail ($log):"
    local -a lines
    mapfile -t lines <"$log"
    lines=("${lines[@]:1}")
    local from=$((${#lines[@]} > 30 ? ${#lines[@]} - 30 : 0))
    for problem in "${lines[@]:from}"; do echo "    | ${problem%$'\r'}"; done
}

# Every cell of the table whose result is not the bundled run's, into DIFF.
diff_with_bundle() {
    local id variant bundled now
    DIFF=(scenario kernel bundled "this run")
    for id in "${SCENARIOS[@]}"; do
        for variant in "${VARIANTS[@]}"; do
            bundled=${RESULT[bundled/$variant/$id]:-}
            now=${RESULT[replay/$variant/$id]:-}
            [[ $bundled == "$now" ]] && continue
            cell "$bundled"
            DIFF+=("$id" "$variant" "$READ")
            cell "$now"
            DIFF+=("$READ")
        done
    done
}

# Prints the table, diagnostics, problems and differences; returns the exit status.
report() {
    local variant problems=0
    echo
    print_header
    build_table replay
    render_table $((${#VARIANTS[@]} + 2)) "${TABLE[@]}"
    for variant in "${VARIANTS[@]}"; do
        print_diagnostics "$variant"
        print_problems "$variant" && problems=$((problems + 1))
    done
    diff_with_bundle
    local differ=$((${#DIFF[@]} / 4 - 1))
    if ((differ)); then
        printf '\n%d result(s) differ from the bundled run:\n' "$differ"
        render_table 4 "${DIFF[@]}"
    fi
    echo
    echo "console logs: $OUT/<variant>/console.log; bundled table: $HERE/compare.md"
    ((UNEXPECTED)) && echo "$UNEXPECTED scenario(s) differ from their declared expectation"
    if ((differ == 0 && problems == 0)); then
        echo "every result is the bundled one: the run reproduced"
        return 0
    fi
    echo "NOT REPRODUCED: $differ result(s) differ from the bundled run; $problems run(s) with problems"
    return 1
}

# --- main ---------------------------------------------------------------------------

# Reads what the bundle recorded and checks that the files it names exist.
load_bundle() {
    load_manifest
    read -r -a VARIANTS <<<"${MANIFEST[variants]}"
    load_scenarios
    read_lines COMMON "$HERE/qemu/args"
    read_value APPEND_RUN "$HERE/qemu/append-run"
    read_value APPEND_SHELL "$HERE/qemu/append-shell"
    read_value KVM_DEADLINE "$HERE/qemu/kvm-deadline"
    [[ -n $TIMEOUT ]] || read_value TIMEOUT "$HERE/qemu/timeout"
    local variant file
    for variant in "${VARIANTS[@]}"; do
        for file in vmlinux console.log; do
            [[ -f $HERE/$variant/$file ]] || die "the bundle has no $variant/$file"
        done
    done
    [[ -f $HERE/initramfs/validator.cpio ]] || die "the bundle has no initramfs/validator.cpio"
}

shell() {
    local variant=$1
    [[ -f $HERE/$variant/vmlinux ]] ||
        die "this bundle has no $variant kernel (it has: ${MANIFEST[variants]})"
    [[ -f $HERE/initramfs/shell.cpio ]] || die "the bundle has no initramfs/shell.cpio"
    VARIANTS=("$variant")
    choose_accel
    echo "Booting the $variant kernel into busybox sh; \`validator\` runs the suite, \`reboot -f\` or Ctrl-A X leaves."
    exec "$QEMU" "${COMMON[@]}" "${ACCEL_ARGS[@]}" -kernel "$HERE/$variant/vmlinux" \
        -initrd "$HERE/initramfs/shell.cpio" -append "$APPEND_SHELL" -serial mon:stdio
}

main() {
    ACCEL_OPT=auto TIMEOUT='' OUT=$HERE/replay
    local shell_variant=
    while (($#)); do
        case $1 in
        --accel) [[ ${2:-} == @(auto|kvm|tcg) ]] || die "--accel takes auto, kvm or tcg"
            ACCEL_OPT=$2 && shift ;;
        --timeout) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--timeout takes a number of seconds"
            TIMEOUT=$2 && shift ;;
        --out) [[ -n ${2:-} ]] || die "--out takes a directory"
            OUT=$2 && shift ;;
        --shell) [[ ${2:-} == @(vanilla|patched) ]] || die "--shell takes vanilla or patched"
            shell_variant=$2 && shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument $1" ;;
        esac
        shift
    done
    load_bundle
    find_qemu
    mkdir -p "$OUT" || die "cannot create $OUT"
    trap stop_qemu EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    [[ -n $shell_variant ]] && shell "$shell_variant"
    choose_accel
    replay
    report
}

main "$@"
