
use builtin;
use str;

set edit:completion:arg-completer[lllqos] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'lllqos'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'lllqos'= {
            cand -l 'Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50, 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling'
            cand --latency 'Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50, 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling'
            cand --max-state 'Name the limit by idle state instead: the deepest state to allow, as the kernel names it in /sys/devices/system/cpu/cpuN/cpuidle/stateK/name (case-insensitive). The request becomes that state''s exit latency. Names separated by commas are tried in order and the first this machine has wins (C1E,C1). The list may end with a fallback for machines that have none of the names (a VM, a host without a cpuidle driver): a latency (C6,C1,20us) to request that, or `none` to request nothing, warn once and go on without a request. Without a fallback, no match is an error. With --cpu, each CPU gets its own state''s exit latency (or the fallback)'
            cand --cpu 'Constrain only these CPUs, through their per-CPU resume latency, instead of placing the global request: a kernel cpulist (0-3,8,10-11) or `auto` for the CPUs lllqos may run on (set with taskset). The values found are restored when lllqos ends. (measure also pins its loop to these CPUs.)'
            cand --device 'PM QoS node to place the request on, e.g. /dev/cpu_wakeup_latency (Linux 6.19+)'
            cand --name 'Name this lllqos after what it holds the request for (a service, a container): the kernel keeps the first 15 bytes as its command, which lllqos trace shows and --command matches; lllqos status shows its whole command line, this option included'
            cand --pid 'Without COMMAND: hold until process PID has exited (may be repeated: until all have)'
            cand --strict 'Exit with status 125, running nothing, when the request cannot be placed (by default lllqos warns and runs COMMAND anyway)'
            cand -q 'Print no warnings'
            cand --quiet 'Print no warnings'
            cand -v 'Report the requested value and the limit actually in force'
            cand --verbose 'Report the requested value and the limit actually in force'
            cand --pass-fd 'Let COMMAND change the request while it runs: it inherits the request''s descriptor, whose number LLLQOS_FD names. A write of exactly 4 bytes, a native-endian s32 from 0 to 2147483647 (microseconds), sets the request; -1 resets it to no constraint. The kernel reads a write of any other length as a hexadecimal string (printf 12 asks for 18 us) and ignores other negative values: write the 4 binary bytes. The descriptor grants this one request and nothing else, so it works after a privilege drop; a process that keeps it open keeps the request in force. Without --pass-fd the descriptor is not inherited and LLLQOS_FD is unset. A per-CPU request (--cpu) has no descriptor to pass'
            cand --descendants 'Hold the request until COMMAND and every process it leaves running have exited (a daemon that forks, a script that backgrounds work): lllqos becomes their child subreaper and reaps them as they exit. It still exits with COMMAND''s status. A signal lllqos relays goes to COMMAND while it runs, then to every process left below lllqos; one that ends a process, relayed to COMMAND, also reaches them once COMMAND has exited'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand status 'Show what is in force, who holds it, and which idle states each CPU may still enter'
            cand measure 'Measure wake-up latency without, then with the request'
            cand trace 'Log every change of a CPU latency request as it happens'
            cand metrics 'Print what status shows as Prometheus metrics'
            cand recover 'Restore what per-CPU holders killed by SIGKILL left'
            cand oci-hook 'Run as an OCI runtime hook: hold a request for a container''s lifetime'
            cand nri 'Run as a containerd NRI plugin: hold a request for each Kubernetes container that asks'
        }
        &'lllqos;status'= {
            cand --json 'Print JSON (a stable interface; every key in lllqos-status(1)) instead of the summary'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'lllqos;measure'= {
            cand -l 'Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50, 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling'
            cand --latency 'Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50, 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling'
            cand --max-state 'Name the limit by idle state instead: the deepest state to allow, as the kernel names it in /sys/devices/system/cpu/cpuN/cpuidle/stateK/name (case-insensitive). The request becomes that state''s exit latency. Names separated by commas are tried in order and the first this machine has wins (C1E,C1). The list may end with a fallback for machines that have none of the names (a VM, a host without a cpuidle driver): a latency (C6,C1,20us) to request that, or `none` to request nothing, warn once and go on without a request. Without a fallback, no match is an error. With --cpu, each CPU gets its own state''s exit latency (or the fallback)'
            cand --cpu 'Constrain only these CPUs, through their per-CPU resume latency, instead of placing the global request: a kernel cpulist (0-3,8,10-11) or `auto` for the CPUs lllqos may run on (set with taskset). The values found are restored when lllqos ends. (measure also pins its loop to these CPUs.)'
            cand --duration 'Length of each phase: seconds, or with a unit (ms, s, m)'
            cand --interval 'Period of the loop, in microseconds'
            cand --priority 'Run the loop SCHED_FIFO at this priority (1-99); default: normal scheduling'
            cand --plot 'Also write both phases'' latency histograms as one chart to FILE (SVG, for a browser)'
            cand -S 'One loop per CPU, each pinned to it, all at the same priority (as cyclictest -S): on the CPUs of --cpu, or every online CPU lllqos may run on. Shows each CPU and the total'
            cand --smp 'One loop per CPU, each pinned to it, all at the same priority (as cyclictest -S): on the CPUs of --cpu, or every online CPU lllqos may run on. Shows each CPU and the total'
            cand --histogram 'Also print the histograms (1 us buckets)'
            cand --json 'Print JSON: {"without": {...}, "with": {...}, "ratio": {...}, "settings": {...}}, and with --smp "per_cpu": [{"cpu": N, "without": {...}, "with": {...}}]'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'lllqos;trace'= {
            cand --duration 'Stop after this long: seconds, or with a unit (ms, s, m); default: until SIGINT, SIGTERM or SIGHUP'
            cand --pid 'Only changes made by process PID (may be repeated)'
            cand --command 'Only changes made by tasks whose command is NAME, as in /proc/PID/comm (its first 15 bytes; may be repeated)'
            cand --json 'Print JSON Lines (a stable interface; every key in lllqos-trace(1)): time, pid, command, target, action, value_us, limit_before_us, limit_after_us'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'lllqos;metrics'= {
            cand --output 'Write the metrics to FILE instead of stdout, atomically (a temporary file in FILE''s directory, then renamed over it), as node_exporter''s textfile collector needs: e.g. /var/lib/prometheus/node-exporter/lllqos.prom'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'lllqos;recover'= {
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'lllqos;oci-hook'= {
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'lllqos;nri'= {
            cand --socket 'The runtime''s NRI socket [default: the descriptor in NRI_PLUGIN_SOCKET when the runtime started the plugin, else /var/run/nri/nri.sock]'
            cand --plugin-name 'The name the plugin registers under [default: NRI_PLUGIN_NAME, else lllqos]'
            cand --plugin-index 'Its index, two digits: its place among the runtime''s plugins [default: NRI_PLUGIN_IDX, else 50]'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
    ]
    $completions[$command]
}
