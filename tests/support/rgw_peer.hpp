#pragma once
// A real S3 peer for integration tests: a throw-away Ceph cluster with a RADOS Gateway,
// started by tests/support/rgw/rgw.sh in a fresh temporary directory and stopped again when
// the object dies. RGW verifies SigV4 signatures, payload hashes, chunk signatures and
// Content-MD5 like AWS does, so it is the judge for penne's S3 client.
//
// Starting costs a few seconds, so a test binary starts one peer for all its tests through
// rgw_peer_environment (a GoogleTest global environment) and gives each test its own bucket.
// Construction never throws for a cluster that cannot start: ready() is false and failure()
// says why (missing Ceph packages, the tail of the daemons' logs, a timeout).
//
// Thread safety: none needed; the accessors are const and the object is immutable after
// construction. Lifetime: the cluster lives exactly as long as the object; if the test
// process dies without running the destructor, rgw.sh's watchdog stops the daemons.
// Setting PENNE_KEEP_TEST_DIRS keeps the directory (config and daemon logs) for post-mortems.

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace penne::test {

class temp_dir;

class rgw_peer {
public:
    // Starts a cluster whose S3 user has these keys; blocks until the gateway answers.
    explicit rgw_peer(std::string access_key = "penneaccesskey",
                      std::string secret_key = "pennesecretkey0123456789");
    ~rgw_peer();
    rgw_peer(const rgw_peer&) = delete;
    rgw_peer& operator=(const rgw_peer&) = delete;

    bool ready() const noexcept { return ready_; }
    // Why the cluster is not ready (empty when it is).
    const std::string& failure() const noexcept { return failure_; }

    // "http://127.0.0.1:<port>", path-style addressing (no trailing slash).
    const std::string& endpoint() const noexcept { return endpoint_; }
    const std::string& host() const noexcept { return host_; }
    int port() const noexcept { return port_; }
    const std::string& access_key() const noexcept { return access_key_; }
    const std::string& secret_key() const noexcept { return secret_key_; }
    // The region to sign with. RGW does not compare the credential scope's region with its
    // zonegroup (any region verifies), but a CreateBucket LocationConstraint other than the
    // zonegroup's api name "default" is refused with InvalidLocationConstraint, so clients
    // must send none, as for AWS us-east-1.
    const std::string& region() const noexcept { return region_; }
    // The directory holding ceph.conf, log/ and env.
    std::string directory() const;
    // An S3 outage that keeps the data: the gateway process is killed (connections are
    // refused) while the cluster stays; start_gateway() brings it back on the same endpoint.
    // false when the script failed (see log_tail()).
    bool stop_gateway() const;
    bool start_gateway() const;
    // The last lines of every daemon log, for failure messages.
    std::string log_tail(int lines = 30) const;

private:
    void start();
    void stop() noexcept;

    std::unique_ptr<temp_dir> dir_;
    std::string script_;
    bool ready_ = false;
    bool started_ = false;
    std::string failure_;
    std::string endpoint_;
    std::string host_;
    int port_ = 0;
    std::string access_key_;
    std::string secret_key_;
    std::string region_;
};

// One rgw_peer for a whole test binary. Register it once, at namespace scope of one test
// file:
//   static auto* const rgw_env =
//       ::testing::AddGlobalTestEnvironment(new penne::test::rgw_peer_environment);
// and begin each test with
//   const rgw_peer* s3 = rgw_peer_environment::peer();
//   ASSERT_NE(s3, nullptr) << rgw_peer_environment::failure();
// A peer that cannot start is a test failure, never a skip: a missing judge must not pass.
class rgw_peer_environment : public ::testing::Environment {
public:
    void SetUp() override;
    void TearDown() override;
    // The running peer, or nullptr before SetUp, after TearDown or when it failed to start.
    static const rgw_peer* peer() noexcept;
    // Why there is no peer (empty when there is one).
    static const std::string& failure() noexcept;
};

}  // namespace penne::test
