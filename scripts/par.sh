# Sourced by the test scripts: commands that need nothing from each other
# run JOBS at a time (default: all cores) when each is one process on one
# core (qemu-user, valgrind). `par NAME COMMAND...` starts one with its
# output kept aside; `par_wait` waits for them all, prints each output
# under its name (through the sourcing script's `step`), in the order
# they were started, and returns 1 if any failed. A shell function given
# as the command stops at its first failing command, as under set -e.
par_dir=$(mktemp -d)
trap 'rm -rf "$par_dir"' EXIT
par_names=()
par() {
  local name=$1 i=${#par_names[@]}
  shift
  while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-$(nproc)}" ]; do wait -n || true; done
  printf '+ [%s] %s\n' "$name" "$*"
  par_names+=("$name")
  # The command runs in a subshell of its own with set -e (not in an ||
  # list, where bash would ignore -e inside a function), and the status
  # that ends it is written down.
  { set +e; (set -e; "$@") >"$par_dir/$i.log" 2>&1; echo $? >"$par_dir/$i.rc"; } &
}
par_wait() {
  local i bad=0
  wait
  for i in "${!par_names[@]}"; do
    step "${par_names[$i]}"
    cat "$par_dir/$i.log"
    if [ "$(cat "$par_dir/$i.rc")" != 0 ]; then
      echo "FAILED: ${par_names[$i]}"
      bad=1
    fi
  done
  rm -f "$par_dir"/*
  par_names=()
  return $bad
}
