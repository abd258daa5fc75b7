# Step timing shared by the .ci scripts: `step NAME` starts a step (ending
# the previous one), `step_done` prints how long it took. Source it after
# setting STEP_PREFIX (e.g. "deb").
now_us() { echo "${EPOCHREALTIME/./}"; }
step_started=
step_name=
step() {
    step_done
    step_name=$1
    step_started=$(now_us)
    printf '\n--> %s: %s\n' "$STEP_PREFIX" "$step_name"
}
step_done() {
    if [[ -n $step_name ]]; then
        local ds=$((($(now_us) - step_started) / 100000))
        printf '%s: TIME %s: %d.%d s\n' "$STEP_PREFIX" "$step_name" $((ds / 10)) $((ds % 10))
    fi
    step_name=
}
