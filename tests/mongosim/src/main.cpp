// mongosim executable: a MongoDB replica-set simulator for tests and demos.
//   mongosim --port P [--host 127.0.0.1] [--replset N] [--set-name rs0] [--oplog-size N]
//            [--oplog-size-mb MB] [--step-down-every MS] [--auth user:password[,user2:pw2]]
//            [--tls-cert F --tls-key F [--tls-ca F]]
//            [--preload N [--preload-collections C] [--preload-databases D] [--preload-db NAME]
//             [--preload-doc-bytes B] [--preload-seed S]]
// Prints "mongosim listening on <host>:<port>[,<host>:<port>…]" once ready (every member, the
// primary first: the list is a ready-made seed list); exits 0 on SIGINT/SIGTERM.

#include <mongosim/server.hpp>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <malloc.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

void usage(std::FILE* out) {
    std::fputs(
        "usage: mongosim --port P [--host 127.0.0.1] [--replset N] [--set-name rs0]\n"
        "                [--oplog-size N] [--oplog-size-mb MB] [--step-down-every MS]\n"
        "                [--auth user:password[,user2:pw2]] [--trace]\n"
        "                [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]\n"
        "                [--preload N [--preload-collections C] [--preload-databases D]\n"
        "                 [--preload-db NAME] [--preload-doc-bytes B] [--preload-seed S]]\n"
        "  --port P         TCP port of the first member (member i listens on P+i); 0 picks\n"
        "                   a free port for every member\n"
        "  --host H         address to bind (default 127.0.0.1)\n"
        "  --replset N      run a replica set of N members (default 1), each on its own port;\n"
        "                   the first starts as primary (a non-numeric value is the set name)\n"
        "  --set-name NAME  replica set name reported in hello (default rs0)\n"
        "  --step-down-every MS\n"
        "                   the primary steps down every MS milliseconds (failover chaos)\n"
        "  --oplog-size N   keep at most N change events; older ones are dropped (default: all)\n"
        "  --oplog-size-mb MB\n"
        "                   keep at most MB MiB of oplog entries (their BSON size); the oldest\n"
        "                   are dropped, a transaction's all at once (default: no limit). With\n"
        "                   either bound, resuming from a dropped event fails with\n"
        "                   ChangeStreamHistoryLost (286)\n"
        "  --auth U:P[,..]  create these users in admin and require SCRAM authentication\n"
        "                   (SCRAM-SHA-256 and SCRAM-SHA-1); passwords cannot contain ','\n"
        "  --tls-cert FILE  serve TLS only, presenting this PEM certificate (chain)\n"
        "  --tls-key FILE   the certificate's private key (PEM, unencrypted)\n"
        "  --tls-ca FILE    require client certificates issued by these PEM CAs (mutual TLS)\n"
        "  --trace          print every request and reply to stderr\n"
        "  --preload N      load mode: put N generated change events in the oplog at startup\n"
        "                   (70/25/5 % insert/update/delete of ~800-byte order documents,\n"
        "                   the same for the same seed); resume from the oldest with the\n"
        "                   token {_data: \"82000000010000000003\"}\n"
        "  --preload-collections C, --preload-databases D, --preload-db NAME\n"
        "                   spread them over coll0..coll<C-1> in NAME, NAME_1, .. NAME_<D-1>\n"
        "                   (default 1, 1, bench)\n"
        "  --preload-doc-bytes B  BSON size of an inserted document (default 800)\n"
        "  --preload-seed S       generator seed (default 1)\n",
        out);
}

template <class T>
bool parse_number(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

}  // namespace

int main(int argc, char** argv) {
    mongosim::server_options opts;
    bool have_port = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        }
        if (arg == "--trace") {
            opts.trace = true;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "mongosim: %s needs a value\n", argv[i]);
            usage(stderr);
            return 2;
        }
        std::string_view value = argv[++i];
        bool ok = true;
        if (arg == "--port") {
            ok = parse_number(value, opts.port);
            have_port = ok;
        } else if (arg == "--host") {
            opts.host = value;
        } else if (arg == "--replset") {
            // A number is the member count; anything else the set's name (older usage).
            if (!value.empty() && value.find_first_not_of("0123456789") == std::string_view::npos)
                ok = parse_number(value, opts.members) && opts.members >= 1 && opts.members <= 50;
            else
                opts.replset = value;
            ok = ok && !value.empty();
        } else if (arg == "--set-name") {
            opts.replset = value;
            ok = !value.empty();
        } else if (arg == "--step-down-every") {
            std::int64_t ms = 0;
            ok = parse_number(value, ms) && ms > 0;
            opts.step_down_every = std::chrono::milliseconds(ms);
        } else if (arg == "--auth") {
            ok = mongosim::parse_users(value, opts.users);
        } else if (arg == "--oplog-size") {
            ok = parse_number(value, opts.oplog_size);
        } else if (arg == "--oplog-size-mb") {
            ok = parse_number(value, opts.oplog_size_mb) && opts.oplog_size_mb <= 1'000'000;
        } else if (arg == "--preload") {
            ok = parse_number(value, opts.preload.events);
        } else if (arg == "--preload-collections") {
            ok = parse_number(value, opts.preload.collections) && opts.preload.collections >= 1 &&
                 opts.preload.collections <= 1'000'000;
        } else if (arg == "--preload-databases") {
            ok = parse_number(value, opts.preload.databases) && opts.preload.databases >= 1 &&
                 opts.preload.databases <= 10'000;
        } else if (arg == "--preload-db") {
            opts.preload.db = value;
            ok = !value.empty();
        } else if (arg == "--preload-doc-bytes") {
            ok =
                parse_number(value, opts.preload.doc_bytes) && opts.preload.doc_bytes <= 16'000'000;
        } else if (arg == "--preload-seed") {
            ok = parse_number(value, opts.preload.seed);
        } else if (arg == "--tls-cert") {
            opts.tls_cert_file = value;
            ok = !value.empty();
        } else if (arg == "--tls-key") {
            opts.tls_key_file = value;
            ok = !value.empty();
        } else if (arg == "--tls-ca") {
            opts.tls_ca_file = value;
            ok = !value.empty();
        } else {
            std::fprintf(stderr, "mongosim: unknown option %s\n", argv[i - 1]);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            // Never echo --auth's value: it holds passwords.
            std::fprintf(stderr, "mongosim: bad value for %s%s%s\n", argv[i - 1],
                         arg == "--auth" ? "" : ": ", arg == "--auth" ? "" : argv[i]);
            return 2;
        }
    }
    if (!have_port) {
        usage(stderr);
        return 2;
    }

    if (opts.preload.events > 0) {
        // Load mode: replies of up to 16 MiB are built, copied and freed at a high rate.
        // Keep freed memory in the heap instead of mapping fresh pages (and taking a page
        // fault per 4 KiB) for every reply; the profile showed ~15 % of the time there.
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
    }
    boost::asio::io_context io;
    mongosim::server srv(io.get_executor(), opts);
    std::string why;
    if (auto ec = srv.listen(&why)) {
        std::fprintf(stderr, "mongosim: cannot start: %s\n", why.c_str());
        return 1;
    }
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (!ec)
            srv.stop();
    });
    srv.async_run([&](std::exception_ptr e) {
        signals.cancel();
        if (e)
            std::rethrow_exception(e);
    });
    std::string addresses = srv.address(0);
    for (std::size_t i = 1; i < srv.members(); ++i)
        addresses += "," + srv.address(i);
    std::printf("mongosim listening on %s%s%s\n", addresses.c_str(),
                srv.members() > 1 ? (" (replica set " + opts.replset + " of " +
                                     std::to_string(srv.members()) + " members)")
                                        .c_str()
                                  : "",
                opts.tls_cert_file.empty() ? ""
                : opts.tls_ca_file.empty() ? " (TLS)"
                                           : " (TLS, client certificates required)");
    std::fflush(stdout);
    io.run();
    return 0;
}
