#pragma once
// `penne s3 …`: small tools, shaped like the AWS CLI, for checking that penne can reach a
// bucket with the credentials it will use: ls, put, get, rm, presign and mb. They read
// [s3] from the configuration file when one is given, else only the standard AWS_*
// environment, through the same credentials chain as `penne run`.

#include <CLI/CLI.hpp>

#include <string>

namespace penne::app {

// Adds the `s3` subcommand and its children to `cli`.
void add_s3_commands(CLI::App& cli);
// Runs the chosen `s3` child; the process exit code (0 ok, 1 failure, 2 usage/config).
int run_s3_command(CLI::App& cli);

}  // namespace penne::app
