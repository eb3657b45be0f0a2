# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lllqos_global_optspecs
    string join \n l/latency= max-state= cpu= device= strict q/quiet v/verbose name= pid= pass-fd descendants h/help V/version
end

function __fish_lllqos_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lllqos_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lllqos_using_subcommand
    set -l cmd (__fish_lllqos_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lllqos -n "__fish_lllqos_needs_command" -s l -l latency -d 'Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50, 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling' -r
complete -c lllqos -n "__fish_lllqos_needs_command" -l max-state -d 'Name the limit by idle state instead: the deepest state to allow, as the kernel names it in /sys/devices/system/cpu/cpuN/cpuidle/stateK/name (case-insensitive). The request becomes that state\'s exit latency. Names separated by commas are tried in order and the first this machine has wins (C1E,C1). The list may end with a fallback for machines that have none of the names (a VM, a host without a cpuidle driver): a latency (C6,C1,20us) to request that, or `none` to request nothing, warn once and go on without a request. Without a fallback, no match is an error. With --cpu, each CPU gets its own state\'s exit latency (or the fallback)' -r
complete -c lllqos -n "__fish_lllqos_needs_command" -l cpu -d 'Constrain only these CPUs, through their per-CPU resume latency, instead of placing the global request: a kernel cpulist (0-3,8,10-11) or `auto` for the CPUs lllqos may run on (set with taskset). The values found are restored when lllqos ends. (measure also pins its loop to these CPUs.)' -r
complete -c lllqos -n "__fish_lllqos_needs_command" -l device -d 'PM QoS node to place the request on, e.g. /dev/cpu_wakeup_latency (Linux 6.19+)' -r -F
complete -c lllqos -n "__fish_lllqos_needs_command" -l name -d 'Name this lllqos after what it holds the request for (a service, a container): the kernel keeps the first 15 bytes as its command, which lllqos trace shows and --command matches; lllqos status shows its whole command line, this option included' -r
complete -c lllqos -n "__fish_lllqos_needs_command" -l pid -d 'Without COMMAND: hold until process PID has exited (may be repeated: until all have)' -r
complete -c lllqos -n "__fish_lllqos_needs_command" -l strict -d 'Exit with status 125, running nothing, when the request cannot be placed (by default lllqos warns and runs COMMAND anyway)'
complete -c lllqos -n "__fish_lllqos_needs_command" -s q -l quiet -d 'Print no warnings'
complete -c lllqos -n "__fish_lllqos_needs_command" -s v -l verbose -d 'Report the requested value and the limit actually in force'
complete -c lllqos -n "__fish_lllqos_needs_command" -l pass-fd -d 'Let COMMAND change the request while it runs: it inherits the request\'s descriptor, whose number LLLQOS_FD names. A write of exactly 4 bytes, a native-endian s32 from 0 to 2147483647 (microseconds), sets the request; -1 resets it to no constraint. The kernel reads a write of any other length as a hexadecimal string (printf 12 asks for 18 us) and ignores other negative values: write the 4 binary bytes. The descriptor grants this one request and nothing else, so it works after a privilege drop; a process that keeps it open keeps the request in force. Without --pass-fd the descriptor is not inherited and LLLQOS_FD is unset. A per-CPU request (--cpu) has no descriptor to pass'
complete -c lllqos -n "__fish_lllqos_needs_command" -l descendants -d 'Hold the request until COMMAND and every process it leaves running have exited (a daemon that forks, a script that backgrounds work): lllqos becomes their child subreaper and reaps them as they exit. It still exits with COMMAND\'s status. A signal lllqos relays goes to COMMAND while it runs, then to every process left below lllqos; one that ends a process, relayed to COMMAND, also reaches them once COMMAND has exited'
complete -c lllqos -n "__fish_lllqos_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lllqos -n "__fish_lllqos_needs_command" -s V -l version -d 'Print version'
complete -c lllqos -n "__fish_lllqos_needs_command" -a "status" -d 'Show what is in force, who holds it, and which idle states each CPU may still enter'
complete -c lllqos -n "__fish_lllqos_needs_command" -a "measure" -d 'Measure wake-up latency without, then with the request'
complete -c lllqos -n "__fish_lllqos_needs_command" -a "trace" -d 'Log every change of a CPU latency request as it happens'
complete -c lllqos -n "__fish_lllqos_needs_command" -a "metrics" -d 'Print what status shows as Prometheus metrics'
complete -c lllqos -n "__fish_lllqos_needs_command" -a "recover" -d 'Restore what per-CPU holders killed by SIGKILL left'
complete -c lllqos -n "__fish_lllqos_needs_command" -a "oci-hook" -d 'Run as an OCI runtime hook: hold a request for a container\'s lifetime'
complete -c lllqos -n "__fish_lllqos_needs_command" -a "nri" -d 'Run as a containerd NRI plugin: hold a request for each Kubernetes container that asks'
complete -c lllqos -n "__fish_lllqos_using_subcommand status" -l json -d 'Print JSON (a stable interface; every key in lllqos-status(1)) instead of the summary'
complete -c lllqos -n "__fish_lllqos_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -s l -l latency -d 'Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50, 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -l max-state -d 'Name the limit by idle state instead: the deepest state to allow, as the kernel names it in /sys/devices/system/cpu/cpuN/cpuidle/stateK/name (case-insensitive). The request becomes that state\'s exit latency. Names separated by commas are tried in order and the first this machine has wins (C1E,C1). The list may end with a fallback for machines that have none of the names (a VM, a host without a cpuidle driver): a latency (C6,C1,20us) to request that, or `none` to request nothing, warn once and go on without a request. Without a fallback, no match is an error. With --cpu, each CPU gets its own state\'s exit latency (or the fallback)' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -l cpu -d 'Constrain only these CPUs, through their per-CPU resume latency, instead of placing the global request: a kernel cpulist (0-3,8,10-11) or `auto` for the CPUs lllqos may run on (set with taskset). The values found are restored when lllqos ends. (measure also pins its loop to these CPUs.)' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -l duration -d 'Length of each phase: seconds, or with a unit (ms, s, m)' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -l interval -d 'Period of the loop, in microseconds' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -l priority -d 'Run the loop SCHED_FIFO at this priority (1-99); default: normal scheduling' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -l plot -d 'Also write both phases\' latency histograms as one chart to FILE (SVG, for a browser)' -r -F
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -s S -l smp -d 'One loop per CPU, each pinned to it, all at the same priority (as cyclictest -S): on the CPUs of --cpu, or every online CPU lllqos may run on. Shows each CPU and the total'
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -l histogram -d 'Also print the histograms (1 us buckets)'
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -l json -d 'Print JSON: {"without": {...}, "with": {...}, "ratio": {...}, "settings": {...}}, and with --smp "per_cpu": [{"cpu": N, "without": {...}, "with": {...}}]'
complete -c lllqos -n "__fish_lllqos_using_subcommand measure" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lllqos -n "__fish_lllqos_using_subcommand trace" -l duration -d 'Stop after this long: seconds, or with a unit (ms, s, m); default: until SIGINT, SIGTERM or SIGHUP' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand trace" -l pid -d 'Only changes made by process PID (may be repeated)' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand trace" -l command -d 'Only changes made by tasks whose command is NAME, as in /proc/PID/comm (its first 15 bytes; may be repeated)' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand trace" -l json -d 'Print JSON Lines (a stable interface; every key in lllqos-trace(1)): time, pid, command, target, action, value_us, limit_before_us, limit_after_us'
complete -c lllqos -n "__fish_lllqos_using_subcommand trace" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lllqos -n "__fish_lllqos_using_subcommand metrics" -l output -d 'Write the metrics to FILE instead of stdout, atomically (a temporary file in FILE\'s directory, then renamed over it), as node_exporter\'s textfile collector needs: e.g. /var/lib/prometheus/node-exporter/lllqos.prom' -r -F
complete -c lllqos -n "__fish_lllqos_using_subcommand metrics" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lllqos -n "__fish_lllqos_using_subcommand recover" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lllqos -n "__fish_lllqos_using_subcommand oci-hook" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lllqos -n "__fish_lllqos_using_subcommand nri" -l socket -d 'The runtime\'s NRI socket [default: the descriptor in NRI_PLUGIN_SOCKET when the runtime started the plugin, else /var/run/nri/nri.sock]' -r -F
complete -c lllqos -n "__fish_lllqos_using_subcommand nri" -l plugin-name -d 'The name the plugin registers under [default: NRI_PLUGIN_NAME, else lllqos]' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand nri" -l plugin-index -d 'Its index, two digits: its place among the runtime\'s plugins [default: NRI_PLUGIN_IDX, else 50]' -r
complete -c lllqos -n "__fish_lllqos_using_subcommand nri" -s h -l help -d 'Print help (see more with \'--help\')'

# Added by `cargo xtask gen`: COMMAND and its arguments complete as a command line of their own.
complete -c lllqos -n "not __fish_lllqos_using_subcommand status measure trace metrics recover oci-hook nri" -x -a "(__fish_complete_subcommand -- -l --latency --max-state --cpu --device --name --pid)"
# --max-state: the idle-state names this machine lists.
complete -c lllqos -l max-state -x -a "(sort -u /sys/devices/system/cpu/cpu*/cpuidle/state*/name 2>/dev/null)"
