#pragma once
// Test PKI for the TLS integration tests, made with the openssl command line into a
// directory the test owns: a test CA and a second, unrelated CA; a server certificate for
// localhost and 127.0.0.1 and one for another host name, both issued by the test CA; a
// client certificate from the test CA as one PEM file with its key, plain and with the key
// encrypted by client_key_password. EC P-256 keys keep generation fast.
//
// Thread safety: make_certificates runs child processes; call it from one thread.

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace penne::test {

struct tls_certificates {
    static constexpr const char* client_key_password = "Cl1ent-Key-Pa55";
    std::string ca;           // PEM certificate of the test CA
    std::string other_ca;     // PEM certificate of an unrelated CA
    std::string server_cert;  // CN=localhost, SAN DNS:localhost IP:127.0.0.1
    std::string server_key;
    std::string wrong_host_cert;  // SAN DNS:db.example.net only, from the test CA
    std::string wrong_host_key;
    std::string client;            // client certificate and key in one file
    std::string client_encrypted;  // the same with the key encrypted (client_key_password)
    std::string untrusted_client;  // certificate and key issued by other_ca
};

namespace detail {

inline bool run_openssl(const std::string& args, std::string& error) {
    const std::string cmd = "openssl " + args + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
        error = "failed: " + cmd;
        return false;
    }
    return true;
}

inline bool concat(const std::vector<std::string>& parts, const std::string& out,
                   std::string& error) {
    std::ofstream o(out, std::ios::binary);
    for (const auto& p : parts) {
        std::ifstream i(p, std::ios::binary);
        if (!i) {
            error = "cannot read " + p;
            return false;
        }
        o << i.rdbuf();
    }
    if (!o) {
        error = "cannot write " + out;
        return false;
    }
    return true;
}

inline std::string quoted(const std::string& path) {
    return "'" + path + "'";
}

// A self-signed CA: <dir>/<name>.pem and <dir>/<name>.key.
inline bool make_ca(const std::string& dir, const std::string& name, std::string& error) {
    return run_openssl(
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
        " -subj '/CN=penne " +
            name + "'" + " -addext basicConstraints=critical,CA:TRUE" +
            " -addext keyUsage=critical,keyCertSign,cRLSign" + " -keyout " +
            quoted(dir + "/" + name + ".key") + " -out " + quoted(dir + "/" + name + ".pem"),
        error);
}

// A leaf issued by CA `ca`: <dir>/<name>.pem and <dir>/<name>.key.
inline bool make_leaf(const std::string& dir, const std::string& ca, const std::string& name,
                      const std::string& cn, const std::string& extensions, int serial,
                      std::string& error) {
    const std::string base = dir + "/" + name;
    {
        std::ofstream ext(base + ".ext");
        ext << extensions;
    }
    return run_openssl(
               "req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj '/CN=" + cn +
                   "' -keyout " + quoted(base + ".key") + " -out " + quoted(base + ".csr"),
               error) &&
           run_openssl("x509 -req -days 2 -in " + quoted(base + ".csr") + " -CA " +
                           quoted(dir + "/" + ca + ".pem") + " -CAkey " +
                           quoted(dir + "/" + ca + ".key") + " -set_serial " +
                           std::to_string(serial) + " -extfile " + quoted(base + ".ext") +
                           " -out " + quoted(base + ".pem"),
                       error);
}

}  // namespace detail

// Writes the PKI into `dir` (which must exist). False, with `error` saying which step
// failed, when openssl is missing or fails.
inline bool make_certificates(const std::string& dir, tls_certificates& out, std::string& error) {
    using namespace detail;
    const std::string common =
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n";
    const std::string server_ext = common + "extendedKeyUsage=serverAuth\n";
    const std::string client_ext = common + "extendedKeyUsage=clientAuth\n";
    if (!make_ca(dir, "ca", error) || !make_ca(dir, "other-ca", error) ||
        !make_leaf(dir, "ca", "server", "localhost",
                   server_ext + "subjectAltName=DNS:localhost,IP:127.0.0.1\n", 2, error) ||
        !make_leaf(dir, "ca", "wrong-host", "db.example.net",
                   server_ext + "subjectAltName=DNS:db.example.net\n", 3, error) ||
        !make_leaf(dir, "ca", "client", "penne-client", client_ext, 4, error) ||
        !make_leaf(dir, "other-ca", "untrusted-client", "penne-client", client_ext, 5, error))
        return false;
    if (!run_openssl("pkey -in " + quoted(dir + "/client.key") +
                         " -aes256 -passout pass:" + tls_certificates::client_key_password +
                         " -out " + quoted(dir + "/client-encrypted.key"),
                     error))
        return false;
    out.ca = dir + "/ca.pem";
    out.other_ca = dir + "/other-ca.pem";
    out.server_cert = dir + "/server.pem";
    out.server_key = dir + "/server.key";
    out.wrong_host_cert = dir + "/wrong-host.pem";
    out.wrong_host_key = dir + "/wrong-host.key";
    out.client = dir + "/client-combined.pem";
    out.client_encrypted = dir + "/client-encrypted-combined.pem";
    out.untrusted_client = dir + "/untrusted-client-combined.pem";
    return concat({dir + "/client.pem", dir + "/client.key"}, out.client, error) &&
           concat({dir + "/client.pem", dir + "/client-encrypted.key"}, out.client_encrypted,
                  error) &&
           concat({dir + "/untrusted-client.pem", dir + "/untrusted-client.key"},
                  out.untrusted_client, error);
}

}  // namespace penne::test
