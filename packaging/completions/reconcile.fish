# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_reconcile_global_optspecs
    string join \n c/config= state= n/dry-run o/output= deadline= wait-lock= v/verbose q/quiet h/help V/version
end

function __fish_reconcile_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_reconcile_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_reconcile_using_subcommand
    set -l cmd (__fish_reconcile_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c reconcile -n "__fish_reconcile_needs_command" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_needs_command" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_needs_command" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_needs_command" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_needs_command" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_needs_command" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_needs_command" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_needs_command" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reconcile -n "__fish_reconcile_needs_command" -s V -l version -d 'Print version'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "gate" -d 'One gate pass: advance tasks whose quality gate is green'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "plane" -d 'One Plane pass: replay lost Plane webhooks (start, resume, verdict)'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "all" -d 'One tick: the gate pass, then the Plane pass'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "status" -d 'Persisted counters; needs only the sidecar'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "history" -d 'Recent unblocks and ticks from the sidecar (read-only)'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "check" -d 'Validate the config, probe the orchestrator, Plane and Telegram read-only, show each project\'s state mapping and the tasks that can never be resolved'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "outbox" -d 'Queued notifications: list them, or drop one'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "forget" -d 'Drop one de-dup key: the next unblock of it is announced'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "demo" -d 'Run a real tick against a built-in simulated stack (no config needed)'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "completions" -d 'Print a shell completion script on stdout'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "man" -d 'Print the man page (roff) on stdout'
complete -c reconcile -n "__fish_reconcile_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reconcile -n "__fish_reconcile_using_subcommand gate" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand gate" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand gate" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand gate" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand gate" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand gate" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand gate" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand gate" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand gate" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand plane" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand plane" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand plane" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand plane" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand plane" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand plane" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand plane" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand plane" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand plane" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand all" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand all" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand all" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand all" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand all" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand all" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand all" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand all" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand all" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand status" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand status" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand status" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand status" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand status" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand status" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand status" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand status" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand status" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -l limit -d 'Show at most N unblocks and N ticks' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -l since -d 'Only what happened in this last period: 90 (seconds), 15m, 2h, 1d, 1h30m' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand history" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand check" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand check" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand check" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand check" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand check" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand check" -l offline -d 'Config and sidecar only: no secret read, no peer contacted'
complete -c reconcile -n "__fish_reconcile_using_subcommand check" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand check" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand check" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand check" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -f -a "list" -d 'Every queued message and the most recent dropped ones'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -f -a "drop" -d 'Drop one queued message (it will not be sent)'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and not __fish_seen_subcommand_from list drop help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from list" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from list" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from list" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from list" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from list" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from list" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "list" -d 'Every queued message and the most recent dropped ones'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "drop" -d 'Drop one queued message (it will not be sent)'
complete -c reconcile -n "__fish_reconcile_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reconcile -n "__fish_reconcile_using_subcommand forget" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand forget" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand forget" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand forget" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand forget" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand forget" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand forget" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand forget" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand forget" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand demo" -l metrics -d 'Also write the tick\'s metrics textfile to FILE' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand demo" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand demo" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand demo" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand demo" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand demo" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand demo" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand demo" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand demo" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand demo" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand completions" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand completions" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand completions" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand completions" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand completions" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand completions" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand completions" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand completions" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand completions" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand man" -s c -l config -d 'Configuration file [default: /etc/reconcile/reconcile.toml]' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand man" -l state -d 'Sidecar path (overrides [state] path)' -r -F
complete -c reconcile -n "__fish_reconcile_using_subcommand man" -s o -l output -d 'Report format on stdout' -r -f -a "text\t''
json\t''"
complete -c reconcile -n "__fish_reconcile_using_subcommand man" -l deadline -d 'Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand man" -l wait-lock -d 'Wait this long for another tick\'s lock, 0–86400 seconds' -r
complete -c reconcile -n "__fish_reconcile_using_subcommand man" -s n -l dry-run -d 'Decide everything, change nothing'
complete -c reconcile -n "__fish_reconcile_using_subcommand man" -s v -l verbose -d 'More logging (repeatable); RUST_LOG still wins'
complete -c reconcile -n "__fish_reconcile_using_subcommand man" -s q -l quiet -d 'Less logging, and a text report without summary lines'
complete -c reconcile -n "__fish_reconcile_using_subcommand man" -s h -l help -d 'Print help'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "gate" -d 'One gate pass: advance tasks whose quality gate is green'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "plane" -d 'One Plane pass: replay lost Plane webhooks (start, resume, verdict)'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "all" -d 'One tick: the gate pass, then the Plane pass'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "status" -d 'Persisted counters; needs only the sidecar'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "history" -d 'Recent unblocks and ticks from the sidecar (read-only)'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "check" -d 'Validate the config, probe the orchestrator, Plane and Telegram read-only, show each project\'s state mapping and the tasks that can never be resolved'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "outbox" -d 'Queued notifications: list them, or drop one'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "forget" -d 'Drop one de-dup key: the next unblock of it is announced'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "demo" -d 'Run a real tick against a built-in simulated stack (no config needed)'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "completions" -d 'Print a shell completion script on stdout'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "man" -d 'Print the man page (roff) on stdout'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and not __fish_seen_subcommand_from gate plane all status history check outbox forget demo completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "list" -d 'Every queued message and the most recent dropped ones'
complete -c reconcile -n "__fish_reconcile_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "drop" -d 'Drop one queued message (it will not be sent)'
