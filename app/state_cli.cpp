#include "state_cli.hpp"

#include "config_file.hpp"

#include <penne/redis/connection.hpp>
#include <penne/redis/state_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <ctime>
#include <string>

namespace penne::app {
namespace asio = boost::asio;
namespace {

struct state_cli_args {
    std::string config_path;
    bool yes = false;
};

state_cli_args& args() {
    static state_cli_args a;
    return a;
}

std::string utc(std::int64_t unix_seconds) {
    const std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    char buf[32];
    if (!::gmtime_r(&t, &tm) || std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return std::to_string(unix_seconds);
    return buf;
}

// Runs one operation on `ctx` to completion.
error_code run_one(asio::io_context& ctx, asio::awaitable<error_code> op) {
    error_code result = make_error_code(errc::cancelled);
    asio::co_spawn(ctx, std::move(op), [&](std::exception_ptr e, error_code ec) {
        result = e ? make_error_code(errc::protocol_error) : ec;
    });
    ctx.restart();
    ctx.run();
    return result;
}

int fail(const char* what, const error_code& ec, const diagnostics& diag) {
    std::fprintf(stderr, "penne: %s: %s%s%s\n", what, ec.message().c_str(),
                 diag.message.empty() ? "" : ": ", diag.message.c_str());
    return 1;
}

int ack_loss(const config& cfg) {
    if (cfg.state.type != "redis") {
        std::fprintf(stderr,
                     "penne: state.type is '%s': only the Redis state store detects and records "
                     "losses\n",
                     cfg.state.type.c_str());
        return 2;
    }
    redis::connection_options ro;
    diagnostics diag;
    if (auto ec = redis::parse_url(cfg.state.url, ro.server, diag)) {
        std::fprintf(stderr, "penne: invalid configuration: state.url: %s\n", diag.message.c_str());
        return 2;
    }
    ro.tls_ca_file = cfg.state.tls_ca_file;
    ro.connect_timeout = cfg.state.connect_timeout;
    ro.command_timeout = cfg.state.command_timeout;
    asio::io_context ctx;
    redis::connection conn(ctx.get_executor(), ro);
    const std::string& prefix = cfg.state.key_prefix;
    const std::string key = redis::store_key(prefix);
    std::printf("state store: %s, key %s\n", conn.describe().c_str(), key.c_str());

    redis::store_marker marker;
    if (auto ec = run_one(ctx, redis::read_store_marker(conn, prefix, marker, diag)))
        return fail("reading the store identity", ec, diag);
    using kind = redis::store_marker::kind;
    if (marker.state == kind::absent) {
        std::printf("no store identity: nothing to acknowledge (the next start creates one)\n");
        return 0;
    }
    if (marker.state == kind::live) {
        std::printf("store %s (created %s%s): no loss recorded, nothing to acknowledge\n",
                    marker.id.c_str(), utc(marker.time).c_str(),
                    marker.acknowledges.empty()
                        ? ""
                        : (", acknowledging the loss of store " + marker.acknowledges).c_str());
        return 0;
    }
    std::printf(
        "Redis lost penne's state: store %s was found gone at %s.\n"
        "Acknowledging accepts a gap: the change events between the loss and the next start\n"
        "are not in the destination, and every scope without saved state starts from now.\n"
        "If Redis can be restored from its AOF/RDB instead, stop every penne, restore it and\n"
        "start them again: nothing is lost then.\n",
        marker.id.c_str(), utc(marker.time).c_str());
    if (!args().yes) {
        std::printf("Nothing changed. Run again with --yes to acknowledge the loss.\n");
        return 1;
    }
    redis::ack_result ack;
    if (auto ec = run_one(ctx, redis::acknowledge_loss(conn, prefix, ack, diag)))
        return fail("acknowledging the loss", ec, diag);
    if (ack.after.state != kind::live || ack.after.acknowledges.empty()) {
        std::printf("%s changed meanwhile (now '%s'): nothing done\n", key.c_str(),
                    ack.after.value().c_str());
        return 1;
    }
    std::printf(
        "Acknowledged: replaced the tombstone of store %s; %s now names store %s.\n"
        "penne instances start again (every scope without saved state from now).\n",
        ack.after.acknowledges.c_str(), key.c_str(), ack.after.id.c_str());
    return 0;
}

}  // namespace

void add_state_commands(CLI::App& cli) {
    auto* state = cli.add_subcommand("state", "Operator tools for the state store");
    state->require_subcommand(1);
    auto* ack = state->add_subcommand(
        "ack-loss",
        "Acknowledge that Redis lost penne's state, so that instances start again from now");
    ack->add_option("-c,--config", args().config_path, "Configuration file (TOML)")->required();
    ack->add_flag("--yes", args().yes,
                  "Really acknowledge (without it: only say what it would do)");
}

int run_state_command(CLI::App& cli) {
    auto* state = cli.get_subcommand("state");
    config cfg;
    std::string error;
    if (!load_config(args().config_path, environment(), cfg, error)) {
        std::fprintf(stderr, "penne: invalid configuration: %s\n", error.c_str());
        return 2;
    }
    if (state->got_subcommand("ack-loss"))
        return ack_loss(cfg);
    return 2;
}

}  // namespace penne::app
