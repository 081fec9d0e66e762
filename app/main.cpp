// penne — the daemon. The one composition root: reads the command line, the config file and
// the environment, builds the adapters, runs the pipeline on an io_context, and turns
// signals into cancellation.

#include <penne/version.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "config_file.hpp"
#include "run.hpp"
#include "s3_cli.hpp"
#include "state_cli.hpp"

int main(int argc, char** argv) {
    CLI::App cli{"penne: streams MongoDB change events into S3-compatible object storage"};
    cli.require_subcommand(1);
    std::string config_path;

    auto* run = cli.add_subcommand("run", "Run the pipeline until SIGINT/SIGTERM");
    run->add_option("-c,--config", config_path, "Configuration file (TOML)")->required();
    auto* check = cli.add_subcommand("check-config", "Validate a configuration file and exit");
    check->add_option("-c,--config", config_path, "Configuration file (TOML)")->required();
    cli.add_subcommand("version", "Print the version");
    penne::app::add_s3_commands(cli);
    penne::app::add_state_commands(cli);

    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return cli.exit(e);
    }

    if (cli.got_subcommand("version")) {
        std::printf("penne %s\n", PENNE_VERSION_STRING);
        return 0;
    }

    if (cli.got_subcommand("s3"))
        return penne::app::run_s3_command(cli);
    if (cli.got_subcommand("state"))
        return penne::app::run_state_command(cli);

    penne::app::config cfg;
    std::string error;
    if (!penne::app::load_config(config_path, penne::app::environment(), cfg, error)) {
        std::fprintf(stderr, "penne: invalid configuration: %s\n", error.c_str());
        return 2;
    }
    if (cli.got_subcommand("check-config"))
        return penne::app::check_config(cfg);
    return penne::app::run_pipeline(cfg);
}
