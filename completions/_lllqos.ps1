
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'lllqos' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'lllqos'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'lllqos' {
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50, 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling')
            [CompletionResult]::new('--latency', '--latency', [CompletionResultType]::ParameterName, 'Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50, 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling')
            [CompletionResult]::new('--max-state', '--max-state', [CompletionResultType]::ParameterName, 'Name the limit by idle state instead: the deepest state to allow, as the kernel names it in /sys/devices/system/cpu/cpuN/cpuidle/stateK/name (case-insensitive). The request becomes that state''s exit latency. Names separated by commas are tried in order and the first this machine has wins (C1E,C1). The list may end with a fallback for machines that have none of the names (a VM, a host without a cpuidle driver): a latency (C6,C1,20us) to request that, or `none` to request nothing, warn once and go on without a request. Without a fallback, no match is an error. With --cpu, each CPU gets its own state''s exit latency (or the fallback)')
            [CompletionResult]::new('--cpu', '--cpu', [CompletionResultType]::ParameterName, 'Constrain only these CPUs, through their per-CPU resume latency, instead of placing the global request: a kernel cpulist (0-3,8,10-11) or `auto` for the CPUs lllqos may run on (set with taskset). The values found are restored when lllqos ends. (measure also pins its loop to these CPUs.)')
            [CompletionResult]::new('--device', '--device', [CompletionResultType]::ParameterName, 'PM QoS node to place the request on, e.g. /dev/cpu_wakeup_latency (Linux 6.19+)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name this lllqos after what it holds the request for (a service, a container): the kernel keeps the first 15 bytes as its command, which lllqos trace shows and --command matches; lllqos status shows its whole command line, this option included')
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Without COMMAND: hold until process PID has exited (may be repeated: until all have)')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Exit with status 125, running nothing, when the request cannot be placed (by default lllqos warns and runs COMMAND anyway)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print no warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print no warnings')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Report the requested value and the limit actually in force')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Report the requested value and the limit actually in force')
            [CompletionResult]::new('--pass-fd', '--pass-fd', [CompletionResultType]::ParameterName, 'Let COMMAND change the request while it runs: it inherits the request''s descriptor, whose number LLLQOS_FD names. A write of exactly 4 bytes, a native-endian s32 from 0 to 2147483647 (microseconds), sets the request; -1 resets it to no constraint. The kernel reads a write of any other length as a hexadecimal string (printf 12 asks for 18 us) and ignores other negative values: write the 4 binary bytes. The descriptor grants this one request and nothing else, so it works after a privilege drop; a process that keeps it open keeps the request in force. Without --pass-fd the descriptor is not inherited and LLLQOS_FD is unset. A per-CPU request (--cpu) has no descriptor to pass')
            [CompletionResult]::new('--descendants', '--descendants', [CompletionResultType]::ParameterName, 'Hold the request until COMMAND and every process it leaves running have exited (a daemon that forks, a script that backgrounds work): lllqos becomes their child subreaper and reaps them as they exit. It still exits with COMMAND''s status. A signal lllqos relays goes to COMMAND while it runs, then to every process left below lllqos; one that ends a process, relayed to COMMAND, also reaches them once COMMAND has exited')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show what is in force, who holds it, and which idle states each CPU may still enter')
            [CompletionResult]::new('measure', 'measure', [CompletionResultType]::ParameterValue, 'Measure wake-up latency without, then with the request')
            [CompletionResult]::new('trace', 'trace', [CompletionResultType]::ParameterValue, 'Log every change of a CPU latency request as it happens')
            [CompletionResult]::new('metrics', 'metrics', [CompletionResultType]::ParameterValue, 'Print what status shows as Prometheus metrics')
            [CompletionResult]::new('recover', 'recover', [CompletionResultType]::ParameterValue, 'Restore what per-CPU holders killed by SIGKILL left')
            [CompletionResult]::new('oci-hook', 'oci-hook', [CompletionResultType]::ParameterValue, 'Run as an OCI runtime hook: hold a request for a container''s lifetime')
            [CompletionResult]::new('nri', 'nri', [CompletionResultType]::ParameterValue, 'Run as a containerd NRI plugin: hold a request for each Kubernetes container that asks')
            break
        }
        'lllqos;status' {
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON (a stable interface; every key in lllqos-status(1)) instead of the summary')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'lllqos;measure' {
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50, 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling')
            [CompletionResult]::new('--latency', '--latency', [CompletionResultType]::ParameterName, 'Latency limit to request: microseconds, or a value with a unit (ns, us, µs, ms, s), e.g. 50, 50us, 0.5ms. 0 keeps CPUs out of every idle state but polling')
            [CompletionResult]::new('--max-state', '--max-state', [CompletionResultType]::ParameterName, 'Name the limit by idle state instead: the deepest state to allow, as the kernel names it in /sys/devices/system/cpu/cpuN/cpuidle/stateK/name (case-insensitive). The request becomes that state''s exit latency. Names separated by commas are tried in order and the first this machine has wins (C1E,C1). The list may end with a fallback for machines that have none of the names (a VM, a host without a cpuidle driver): a latency (C6,C1,20us) to request that, or `none` to request nothing, warn once and go on without a request. Without a fallback, no match is an error. With --cpu, each CPU gets its own state''s exit latency (or the fallback)')
            [CompletionResult]::new('--cpu', '--cpu', [CompletionResultType]::ParameterName, 'Constrain only these CPUs, through their per-CPU resume latency, instead of placing the global request: a kernel cpulist (0-3,8,10-11) or `auto` for the CPUs lllqos may run on (set with taskset). The values found are restored when lllqos ends. (measure also pins its loop to these CPUs.)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Length of each phase: seconds, or with a unit (ms, s, m)')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'Period of the loop, in microseconds')
            [CompletionResult]::new('--priority', '--priority', [CompletionResultType]::ParameterName, 'Run the loop SCHED_FIFO at this priority (1-99); default: normal scheduling')
            [CompletionResult]::new('--plot', '--plot', [CompletionResultType]::ParameterName, 'Also write both phases'' latency histograms as one chart to FILE (SVG, for a browser)')
            [CompletionResult]::new('-S', '-S ', [CompletionResultType]::ParameterName, 'One loop per CPU, each pinned to it, all at the same priority (as cyclictest -S): on the CPUs of --cpu, or every online CPU lllqos may run on. Shows each CPU and the total')
            [CompletionResult]::new('--smp', '--smp', [CompletionResultType]::ParameterName, 'One loop per CPU, each pinned to it, all at the same priority (as cyclictest -S): on the CPUs of --cpu, or every online CPU lllqos may run on. Shows each CPU and the total')
            [CompletionResult]::new('--histogram', '--histogram', [CompletionResultType]::ParameterName, 'Also print the histograms (1 us buckets)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON: {"without": {...}, "with": {...}, "ratio": {...}, "settings": {...}}, and with --smp "per_cpu": [{"cpu": N, "without": {...}, "with": {...}}]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'lllqos;trace' {
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Stop after this long: seconds, or with a unit (ms, s, m); default: until SIGINT, SIGTERM or SIGHUP')
            [CompletionResult]::new('--pid', '--pid', [CompletionResultType]::ParameterName, 'Only changes made by process PID (may be repeated)')
            [CompletionResult]::new('--command', '--command', [CompletionResultType]::ParameterName, 'Only changes made by tasks whose command is NAME, as in /proc/PID/comm (its first 15 bytes; may be repeated)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON Lines (a stable interface; every key in lllqos-trace(1)): time, pid, command, target, action, value_us, limit_before_us, limit_after_us')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'lllqos;metrics' {
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write the metrics to FILE instead of stdout, atomically (a temporary file in FILE''s directory, then renamed over it), as node_exporter''s textfile collector needs: e.g. /var/lib/prometheus/node-exporter/lllqos.prom')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'lllqos;recover' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'lllqos;oci-hook' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'lllqos;nri' {
            [CompletionResult]::new('--socket', '--socket', [CompletionResultType]::ParameterName, 'The runtime''s NRI socket [default: the descriptor in NRI_PLUGIN_SOCKET when the runtime started the plugin, else /var/run/nri/nri.sock]')
            [CompletionResult]::new('--plugin-name', '--plugin-name', [CompletionResultType]::ParameterName, 'The name the plugin registers under [default: NRI_PLUGIN_NAME, else lllqos]')
            [CompletionResult]::new('--plugin-index', '--plugin-index', [CompletionResultType]::ParameterName, 'Its index, two digits: its place among the runtime''s plugins [default: NRI_PLUGIN_IDX, else 50]')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
