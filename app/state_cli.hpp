#pragma once
// `penne state …`: operator tools for the state store. `penne state ack-loss` acknowledges
// that Redis lost penne's state (redis-server restarted without persistence, a FLUSHALL):
// penne detects the loss, writes a tombstone and refuses to run until an operator either
// restores Redis from its AOF/RDB or runs this command, which accepts the gap (the events
// between the loss and the next start are not in the destination) and lets instances start
// again from "now". Without --yes it only says what it would do.

#include <CLI/CLI.hpp>

namespace penne::app {

// Adds the `state` subcommand and its children to `cli`.
void add_state_commands(CLI::App& cli);
// Runs the chosen `state` child; the process exit code (0 done or nothing to do, 1 a loss
// left unacknowledged or a failure, 2 usage/config).
int run_state_command(CLI::App& cli);

}  // namespace penne::app
