// penne — the daemon. The one composition root: reads the command line, the config file and
// the environment, builds the adapters, runs the pipeline on an io_context, and turns
// signals into cancellation.

#include <penne/version.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
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
#if defined(__GLIBC__)
    // Every batch is one buffer of up to batch.max_bytes, freed after compression. By default
    // glibc hands a freed block at the top of the heap back to the kernel and serves large
    // ones with fresh mmaps, so each batch faulted in and zeroed new pages again: ~13 % of
    // penne's CPU in a JSONL+zstd drain (bench/RESULTS.md). Keep up to 128 MiB of freed heap
    // for reuse and serve blocks up to 32 MiB from it; RSS then stays at its high-water mark.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    // glibc gives every thread that meets a locked heap an arena of its own, and each keeps
    // what it freed. The 4 file I/O threads (run.cpp) allocate little, but arenas of their
    // own raised the idle RSS of 10,000 collections from ~58 MiB to 75-92 MiB: share the io
    // threads' arenas instead.
    mallopt(M_ARENA_MAX, static_cast<int>(std::max(1u, cfg.threads)));
#endif
    return penne::app::run_pipeline(cfg);
}
