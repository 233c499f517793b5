// Real TLS end to end, no mocks: a throw-away CA and server certificates made with the openssl CLI
// at test time (no private key is committed), TLS receivers on 127.0.0.1 reached as
// https://localhost:PORT so host name verification applies, and an HTTPS ingress.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "support/harness.hpp"

using namespace testsupport;
using outboxd::db::Params;

namespace {

// Rows straight into the outbox, one mailbox: body = "<mailbox>#<seq>".
void seed_rows(TestDatabase& db, const std::string& region, const std::string& mailbox, int rows) {
    db.sql("INSERT INTO control_outbox (region_name, mailbox_name, request_path, request_body) "
           "SELECT $1, $2, '/hook', convert_to($2 || '#' || g, 'UTF8') FROM generate_series(1, $3) g",
           Params(region, mailbox, rows));
}

// The [ingress] table of a daemon_config() gets extra keys (TOML allows a table only once).
void add_to_ingress(DaemonConfig& cfg, const std::string& lines) {
    auto at = cfg.toml.find("[ingress]\n");
    cfg.toml.insert(at + std::string("[ingress]\n").size(), lines);
}

}  // namespace

class Tls : public ::testing::Test {
protected:
    // Certificates for the whole suite, in a temporary directory removed at the end:
    //   ca.pem               the test CA (given to outboxd as tls.ca_file, to curl as --cacert)
    //   good.{pem,key}       localhost (SAN DNS:localhost, IP:127.0.0.1), signed by the test CA
    //   expired.{pem,key}    the same names, valid January 2020 only
    //   wrong.{pem,key}      wrong.example only, signed by the test CA
    //   unknown.{pem,key}    localhost, signed by a CA outboxd does not trust
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/outboxd-tls-XXXXXX";
        dir_ = mkdtemp(tmpl);
        std::ofstream(dir_ + "/openssl.cnf") << "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n"
                                                "[ca_ext]\nbasicConstraints = critical,CA:TRUE\n"
                                                "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
                                                "[ca]\ndefault_ca = test_ca\n"
                                                "[test_ca]\ndatabase = " + dir_ + "/index.txt\nnew_certs_dir = " + dir_ +
                                                    "/issued\nserial = " + dir_ +
                                                    "/serial\ndefault_md = sha256\npolicy = policy_any\n"
                                                    "copy_extensions = none\nunique_subject = no\n"
                                                "[policy_any]\ncommonName = supplied\n"
                                                "[localhost_ext]\nbasicConstraints = CA:FALSE\n"
                                                "keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n"
                                                "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
                                                "[wrong_ext]\nbasicConstraints = CA:FALSE\n"
                                                "keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n"
                                                "subjectAltName = DNS:wrong.example\n";
        const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        const std::string cnf = " -config " + dir_ + "/openssl.cnf";
        auto ca = [&](const std::string& name, const std::string& cn) {
            return "openssl req -x509" + cnf + " -extensions ca_ext" + key + " -keyout " + name + ".key -out " + name +
                   ".pem -days 3 -subj '/CN=" + cn + "'\n";
        };
        auto leaf = [&](const std::string& name, const std::string& cn, const std::string& issuer,
                        const std::string& ext, const std::string& validity) {
            return "openssl req -new" + cnf + key + " -keyout " + name + ".key -out " + name + ".csr -subj '/CN=" + cn +
                   "'\nopenssl ca -batch -notext" + cnf + " -extensions " + ext + " -cert " + issuer + ".pem -keyfile " +
                   issuer + ".key -in " + name + ".csr -out " + name + ".pem " + validity + "\n";
        };
        std::string script = "set -e\ncd " + dir_ + "\nmkdir issued\ntouch index.txt\necho 1000 > serial\n" +
                             ca("ca", "outboxd test CA") + ca("rogue", "outboxd rogue CA") +
                             leaf("good", "localhost", "ca", "localhost_ext", "-days 3") +
                             leaf("expired", "localhost", "ca", "localhost_ext",
                                  "-startdate 20200101000000Z -enddate 20200201000000Z") +
                             leaf("wrong", "wrong.example", "ca", "wrong_ext", "-days 3") +
                             leaf("unknown", "localhost", "rogue", "localhost_ext", "-days 3");
        std::ofstream(dir_ + "/make.sh") << script;
        auto [rc, out] = run_command("sh " + dir_ + "/make.sh");
        if (rc != 0) setup_error_ = "making test certificates failed:\n" + out;
    }
    static void TearDownTestSuite() { run_command("rm -rf " + dir_); }

    void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

    static std::string file(const std::string& name) { return dir_ + "/" + name; }
    static ReceiverTls cert(const std::string& name, bool tls12_only = false) {
        ReceiverTls t;
        t.cert_file = file(name + ".pem");
        t.key_file = file(name + ".key");
        t.tls12_only = tls12_only;
        return t;
    }
    static std::string trust_test_ca() { return "[tls]\nca_file = \"" + file("ca.pem") + "\"\n"; }

    static std::string dir_;
    static std::string setup_error_;
};

std::string Tls::dir_;
std::string Tls::setup_error_;

TEST_F(Tls, CertificatesAreWhatTheTestsClaim) {
    auto verify = [](const std::string& pem, const std::string& extra = "") {
        return run_command("openssl verify -CAfile " + file("ca.pem") + extra + " " + file(pem)).second;
    };
    EXPECT_NE(verify("good.pem", " -verify_hostname localhost").find(": OK"), std::string::npos);
    EXPECT_NE(verify("good.pem", " -verify_ip 127.0.0.1").find(": OK"), std::string::npos);
    EXPECT_NE(verify("expired.pem").find("certificate has expired"), std::string::npos);
    EXPECT_NE(verify("wrong.pem", " -verify_hostname localhost").find("hostname mismatch"), std::string::npos);
    EXPECT_NE(verify("wrong.pem").find(": OK"), std::string::npos) << "wrong.pem is otherwise valid";
    EXPECT_NE(verify("unknown.pem").find("unable to get local issuer certificate"), std::string::npos);
}

TEST_F(Tls, DeliversOverVerifiedTlsReusingOneConnection) {
    TestDatabase db("tls_deliver");
    Receiver us({}, cert("good"));
    ASSERT_EQ(us.url(), "https://localhost:" + std::to_string(us.port()));
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, trust_test_ca());
    Daemon d(cfg.toml, "tls_deliver");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "us", "tls:one", 50);
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 30s)) << d.log();
    auto got = us.ok();
    ASSERT_EQ(got.size(), 50u);
    for (std::size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].body, "tls:one#" + std::to_string(i + 1)) << "in order, each once";
        EXPECT_EQ(got[i].headers["x-outbox-attempt"], "1");
    }
    EXPECT_EQ(got[0].headers["host"], "localhost:" + std::to_string(us.port()));
    EXPECT_FALSE(got[0].headers["x-outbox-signature"].empty());
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox_dead"), "0");
    // 50 sequential deliveries to one destination: one connection, one handshake (a second only
    // if the idle one were dropped in between).
    EXPECT_GE(us.handshakes(), 1u);
    EXPECT_LE(us.handshakes(), 2u) << "a handshake per request is a defect";
    EXPECT_LE(us.connections(), 2u);
    double opened = metric_value(cfg.metrics, "outboxd_delivery_connections_total", "scheme=\"https\"");
    EXPECT_GE(opened, 1);
    EXPECT_LE(opened, 2);
    EXPECT_EQ(metric_value(cfg.metrics, "outboxd_deliveries_total", "region=\"us\",outcome=\"delivered\""), 50);
    EXPECT_LE(metric_value(cfg.metrics, "outboxd_tls_errors_total"), 0) << "no TLS error series";
    EXPECT_EQ(count_of(d.log(), "tls: handshake"), 0u) << "nothing logged per connection while all is well";
    EXPECT_EQ(d.terminate(), 0);
}

// Beast's TLS stream copies a gather write into one record only up to 16 KiB; past that it
// writes what fits and, once the head has gone, a zero-length piece, which ends Asio's write loop
// without an error. Bodies around and far over that size must arrive whole (GitHub pushes do).
TEST_F(Tls, BodiesOverSixteenKibArriveWhole) {
    TestDatabase db("tls_large_bodies");
    Receiver us({}, cert("good"));
    auto cfg = daemon_config(db.url(), {{"us", us.url()}},
                             trust_test_ca() + "[drain]\nrequest_timeout = \"2s\"\n[retry]\nmax_attempts = 2\n");
    Daemon d(cfg.toml, "tls_large");
    ASSERT_TRUE(d.start()) << d.log();
    std::vector<std::size_t> sizes{16000, 16384 - 300, 16384, 16385, 20000, 100000, 1000000};
    for (std::size_t i = 0; i < sizes.size(); ++i)
        db.sql("INSERT INTO control_outbox (region_name, mailbox_name, request_path, request_body) "
               "VALUES ('us', 'big:' || $1, '/hook', convert_to(repeat('x', $2::int), 'UTF8'))",
               Params(static_cast<std::int64_t>(i), static_cast<std::int64_t>(sizes[i])));
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 20s)) << d.log();
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox_dead"), "0") << d.log();
    std::multiset<std::size_t> got;
    for (const auto& r : us.ok()) got.insert(r.body.size());
    EXPECT_EQ(got, std::multiset<std::size_t>(sizes.begin(), sizes.end()));
    EXPECT_EQ(us.requests().size(), sizes.size()) << "each once, no timeouts and retries";
    EXPECT_EQ(d.terminate(), 0);
}

// A ca_file that holds no certificate (here a private key) stops start-up with a message naming
// tls.ca_file, before the database is touched: the database here does not exist.
TEST_F(Tls, CaFileWithoutACertificateStopsStartUpNamingTheKey) {
    std::string cfg = "[database]\nurl = \"postgresql://127.0.0.1:1/none\"\n[tls]\nca_file = \"" + file("ca.key") + "\"\n";
    std::string path = file("bad_ca.toml");
    std::ofstream(path) << cfg;
    auto [rc, out] = run_command(binary_dir() + "/outboxd --config " + path);
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("tls.ca_file"), std::string::npos) << out;
    EXPECT_EQ(out.find("database"), std::string::npos) << "checked before connecting: " << out;
    std::ofstream(path) << "[database]\nurl = \"postgresql://127.0.0.1:1/none\"\n[tls]\nca_file = \"" + file("nonexistent.pem") + "\"\n";
    auto [rc2, out2] = run_command(binary_dir() + "/outboxd --config " + path);
    EXPECT_EQ(rc2, 1) << out2;
    EXPECT_NE(out2.find("tls.ca_file"), std::string::npos) << out2;
}

// An idle kept-alive TLS connection that the receiver closed (no close_notify, as an idle timeout
// does) is noticed on reuse and the request goes out on a fresh connection: not a failed attempt.
TEST_F(Tls, IdleConnectionClosedByTheReceiverIsReplacedWithoutARetry) {
    TestDatabase db("tls_stale");
    Receiver us({}, cert("good"));
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, trust_test_ca());
    Daemon d(cfg.toml, "tls_stale");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "us", "tls:stale", 1);
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 1; }, 10s)) << d.log();
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 5s));
    us.drop_connections();
    seed_rows(db, "us", "tls:stale", 1);
    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 2; }, 10s)) << d.log();
    EXPECT_EQ(us.ok()[1].headers["x-outbox-attempt"], "1") << "the stale connection cost no attempt";
    EXPECT_EQ(us.handshakes(), 2u);
    EXPECT_EQ(us.resumed_handshakes(), 1u);
    EXPECT_LE(metric_value(cfg.metrics, "outboxd_deliveries_total", "outcome=\"retry\""), 0);
    EXPECT_LE(metric_value(cfg.metrics, "outboxd_tls_errors_total"), 0);
}

// An IP literal in the URL is checked against the certificate's IP addresses (no SNI is sent).
TEST_F(Tls, IpLiteralUrlIsCheckedAgainstTheCertificateIpAddresses) {
    TestDatabase db("tls_ip");
    ReceiverTls good = cert("good"), wrong = cert("wrong");
    good.host = wrong.host = "127.0.0.1";
    Receiver ok({}, good), bad({}, wrong);
    ASSERT_EQ(ok.url(), "https://127.0.0.1:" + std::to_string(ok.port()));
    auto cfg = daemon_config(db.url(), {{"ip", ok.url()}, {"ipwrong", bad.url()}},
                             trust_test_ca() + "[retry]\nbase_delay = \"50ms\"\nmax_delay = \"100ms\"\nmax_attempts = 1000\n");
    Daemon d(cfg.toml, "tls_ip");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "ip", "tls:ip", 1);
    seed_rows(db, "ipwrong", "tls:ipwrong", 1);
    ASSERT_TRUE(wait_until([&] { return ok.ok().size() == 1; }, 10s)) << d.log();
    ASSERT_TRUE(wait_until([&] {
        return std::stoi("0" + db.scalar("SELECT attempts FROM control_outbox WHERE region_name = 'ipwrong'")) >= 2;
    }, 10s)) << d.log();
    EXPECT_NE(db.scalar("SELECT last_error FROM control_outbox WHERE region_name = 'ipwrong'").find("IP address mismatch"),
              std::string::npos);
    EXPECT_TRUE(bad.requests().empty());
}

// A receiver that closes after every response forces a new connection per delivery: each
// handshake after the first resumes the session (TLS 1.3 tickets arrive after the handshake).
TEST_F(Tls, NewConnectionsResumeTheSession) {
    for (bool tls12 : {false, true}) {
        SCOPED_TRACE(tls12 ? "TLS 1.2" : "TLS 1.3");
        TestDatabase db(tls12 ? "tls_resume12" : "tls_resume13");
        Receiver us({}, cert("good", tls12));
        us.set_keep_alive(false);
        auto cfg = daemon_config(db.url(), {{"us", us.url()}}, trust_test_ca());
        Daemon d(cfg.toml, "tls_resume");
        ASSERT_TRUE(d.start()) << d.log();
        seed_rows(db, "us", "tls:resume", 6);
        ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 20s)) << d.log();
        EXPECT_EQ(us.ok().size(), 6u);
        EXPECT_EQ(us.handshakes(), 6u) << "the receiver closes after each response";
        EXPECT_EQ(us.resumed_handshakes(), 5u) << "every handshake after the first resumed";
        EXPECT_EQ(metric_value(cfg.metrics, "outboxd_delivery_connections_total", "scheme=\"https\""), 6);
        EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox_dead"), "0");
        EXPECT_EQ(d.terminate(), 0);
    }
}

// Unknown CA, expired certificate, wrong host name: each a delivery error that is retried with
// backoff, counted, logged once with OpenSSL's reason; nothing reaches the receivers.
TEST_F(Tls, RefusesUnknownCaExpiredCertificateAndWrongHostName) {
    TestDatabase db("tls_refuse");
    Receiver unknown({}, cert("unknown")), expired({}, cert("expired")), wrong({}, cert("wrong"));
    auto cfg = daemon_config(db.url(), {{"unknownca", unknown.url()}, {"expired", expired.url()}, {"wronghost", wrong.url()}},
                             trust_test_ca() + "[retry]\nbase_delay = \"50ms\"\nmax_delay = \"200ms\"\nmax_attempts = 1000\n");
    Daemon d(cfg.toml, "tls_refuse");
    ASSERT_TRUE(d.start()) << d.log();
    const std::vector<std::tuple<std::string, Receiver*, std::string>> cases = {
        {"unknownca", &unknown, "unable to get local issuer certificate"},
        {"expired", &expired, "certificate has expired"},
        {"wronghost", &wrong, "hostname mismatch"},
    };
    for (const auto& [region, r, reason] : cases) seed_rows(db, region, "tls:" + region, 2);
    // Each mailbox's head fails again and again; the row behind it waits its turn.
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox WHERE attempts >= 4") == "3"; }, 30s))
        << d.log();
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "6") << "nothing lost";
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox_dead"), "0") << "no dead letter before max_attempts";
    std::string log = d.log();
    double counted = metric_value(cfg.metrics, "outboxd_tls_errors_total", "host=\"localhost\"");
    double tls_errors = 0;
    for (const auto& [region, r, reason] : cases) {
        SCOPED_TRACE(region);
        auto last_error = db.sql("SELECT last_error FROM control_outbox WHERE region_name = $1 AND attempts > 0", Params(region));
        ASSERT_EQ(last_error.rows(), 1) << "only the head was tried";
        EXPECT_NE(last_error.text(0, 0).find(reason), std::string::npos) << last_error.text(0, 0);
        EXPECT_NE(last_error.text(0, 0).find(r->url()), std::string::npos) << "names the destination";
        EXPECT_TRUE(r->requests().empty()) << "nothing delivered";
        EXPECT_EQ(r->handshakes(), 0u);
        EXPECT_GE(r->connections(), 4u) << "each attempt tried a fresh connection";
        EXPECT_GE(metric_value(cfg.metrics, "outboxd_deliveries_total", "region=\"" + region + "\",outcome=\"retry\""), 4);
        EXPECT_LE(metric_value(cfg.metrics, "outboxd_deliveries_total", "region=\"" + region + "\",outcome=\"delivered\""), 0);
        // Logged once for the destination, not once per attempt.
        EXPECT_EQ(count_of(log, "tls: handshake failed destination=" + r->url() + " reason=\"" + reason + "\""), 1u) << log;
        tls_errors += static_cast<double>(r->connections());
    }
    EXPECT_GE(counted, 12);
    EXPECT_LE(counted, tls_errors) << "one per refused handshake (each on its own connection)";
    EXPECT_EQ(d.terminate(), 0);
}

TEST_F(Tls, RefusedCertificateIsDeadOnlyAtMaxAttempts) {
    TestDatabase db("tls_max_attempts");
    Receiver us({}, cert("expired"));
    auto cfg = daemon_config(db.url(), {{"us", us.url()}},
                             trust_test_ca() + "[retry]\nbase_delay = \"20ms\"\nmax_delay = \"50ms\"\nmax_attempts = 3\n");
    Daemon d(cfg.toml, "tls_max_attempts");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "us", "tls:dead", 1);
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox_dead") == "1"; }, 20s)) << d.log();
    EXPECT_EQ(db.scalar("SELECT reason || ':' || attempts FROM control_outbox_dead"), "max_attempts:3");
    EXPECT_NE(db.scalar("SELECT last_error FROM control_outbox_dead").find("certificate has expired"), std::string::npos);
    EXPECT_EQ(metric_value(cfg.metrics, "outboxd_deliveries_total", "region=\"us\",outcome=\"retry\""), 2);
    EXPECT_EQ(metric_value(cfg.metrics, "outboxd_deliveries_total", "region=\"us\",outcome=\"dead\""), 1);
    EXPECT_EQ(metric_value(cfg.metrics, "outboxd_tls_errors_total", "host=\"localhost\""), 3);
    EXPECT_TRUE(us.requests().empty());
}

// A destination's TLS state is logged when it changes: failing (once per reason) and recovered.
// The row that was refused all along is delivered once the certificate is fixed.
TEST_F(Tls, StateChangesAreLoggedOnceAndNothingIsLost) {
    TestDatabase db("tls_recover");
    Receiver us({}, cert("expired"));
    auto cfg = daemon_config(db.url(), {{"us", us.url()}},
                             trust_test_ca() + "[retry]\nbase_delay = \"20ms\"\nmax_delay = \"100ms\"\nmax_attempts = 1000\n");
    Daemon d(cfg.toml, "tls_recover");
    ASSERT_TRUE(d.start()) << d.log();
    seed_rows(db, "us", "tls:recover", 1);
    auto attempts = [&] { return std::stoi("0" + db.scalar("SELECT attempts FROM control_outbox")); };
    ASSERT_TRUE(wait_until([&] { return attempts() >= 3; }, 20s)) << d.log();
    us.set_certificate(file("wrong.pem"), file("wrong.key"));
    int before = attempts();
    ASSERT_TRUE(wait_until([&] {
        return attempts() >= before + 3 &&
               db.scalar("SELECT last_error FROM control_outbox").find("hostname mismatch") != std::string::npos;
    }, 20s)) << d.log();
    us.set_certificate(file("good.pem"), file("good.key"));
    ASSERT_TRUE(wait_until([&] { return db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 20s)) << d.log();
    ASSERT_EQ(us.ok().size(), 1u);
    EXPECT_EQ(us.ok()[0].body, "tls:recover#1");
    EXPECT_GE(std::stoi(us.ok()[0].headers["x-outbox-attempt"]), 7);
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox_dead"), "0");
    auto log = d.log();
    std::string dest = "destination=" + us.url();
    EXPECT_EQ(count_of(log, "tls: handshake failed " + dest + " reason=\"certificate has expired\""), 1u) << log;
    EXPECT_EQ(count_of(log, "tls: handshake failed " + dest + " reason=\"hostname mismatch\""), 1u) << log;
    EXPECT_EQ(count_of(log, "tls: handshake failed"), 2u) << log;
    EXPECT_EQ(count_of(log, "tls: handshake verified again " + dest), 1u) << log;
    EXPECT_NE(log.find("level=warning tls: handshake failed"), std::string::npos) << "failures at warn";
    EXPECT_NE(log.find("level=info tls: handshake verified again"), std::string::npos) << "recovery at info";
}

// HTTPS ingress with a test certificate: curl verifies it against the test CA; the webhook is
// stored and forwarded (to a TLS region receiver too).
TEST_F(Tls, IngressServesHttpsAndForwards) {
    TestDatabase db("tls_ingress");
    db.seed_integration(7, "github", "4242", {"us"});
    Receiver us({}, cert("good"));
    auto cfg = daemon_config(db.url(), {{"us", us.url()}}, trust_test_ca());
    add_to_ingress(cfg, "tls_cert = \"" + file("good.pem") + "\"\ntls_key = \"" + file("good.key") + "\"\n");
    Daemon d(cfg.toml, "tls_ingress");
    ASSERT_TRUE(d.start()) << d.log();

    const std::string body = R"({"action":"opened","issue":{"id":1},"installation":{"id":4242}})";
    std::ofstream(file("webhook.json")) << body;
    auto [rc, out] = run_command("curl -sS --max-time 20 --cacert " + file("ca.pem") +
                                 " -o /dev/null -w 'status=%{http_code} tls=%{ssl_verify_result}'"
                                 " -H 'X-GitHub-Event: issues' -H 'Content-Type: application/json'"
                                 " --data-binary @" + file("webhook.json") + " https://localhost:" +
                                 std::to_string(cfg.ingress) + "/extensions/github/webhook/?x=1");
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out, "status=202 tls=0") << d.log();

    ASSERT_TRUE(wait_until([&] { return us.ok().size() == 1 && db.scalar("SELECT count(*) FROM control_outbox") == "0"; }, 15s))
        << d.log();
    auto req = us.ok()[0];
    EXPECT_EQ(req.body, body) << "forwarded byte for byte";
    EXPECT_EQ(req.target, "/extensions/github/webhook/?x=1");
    EXPECT_EQ(req.headers["x-github-event"], "issues");
    EXPECT_EQ(metric_value(cfg.metrics, "outboxd_ingress_requests_total", "provider=\"github\",code=\"202\""), 1);

    // The same certificate refused by a client that does not trust the test CA; plain HTTP gets no answer.
    auto [rc2, out2] = run_command("curl -sS --max-time 20 -o /dev/null --data-binary @" + file("webhook.json") +
                                   " https://localhost:" + std::to_string(cfg.ingress) + "/extensions/github/webhook/");
    EXPECT_NE(rc2, 0) << out2;
    auto plain = http_request("POST", "127.0.0.1", cfg.ingress, "/extensions/github/webhook/", body,
                              {{"X-GitHub-Event", "issues"}});
    EXPECT_EQ(plain.status, 0) << "plain HTTP to the TLS ingress";
    EXPECT_TRUE(wait_until([&] {
        return metric_value(cfg.metrics, "outboxd_ingress_rejected_total", "provider=\"unknown\",reason=\"tls_handshake\"") >= 2;
    }, 5s)) << "the untrusting client and the plain HTTP one are counted\n" << d.log();
    EXPECT_NE(d.log().find("reason=tls_handshake"), std::string::npos) << d.log();
    std::this_thread::sleep_for(300ms);  // a wrongly accepted webhook would be stored by now
    EXPECT_EQ(db.scalar("SELECT count(*) FROM control_outbox"), "0");
    EXPECT_EQ(us.requests().size(), 1u);
    EXPECT_EQ(d.terminate(), 0);
}

TEST_F(Tls, UnusableIngressKeyOrCertificateStopsStartUp) {
    TestDatabase db("tls_bad_key");
    std::ofstream(file("garbage.key")) << "not a key\n";
    // An encrypted key: OpenSSL prompted for its passphrase on the terminal (a start with one hung).
    auto [erc, eout] = run_command("openssl pkey -in " + file("good.key") + " -aes256 -passout pass:secret -out " +
                                   file("encrypted.key"));
    ASSERT_EQ(erc, 0) << eout;
    struct Case {
        std::string cert, key, names;
    };
    for (const auto& c : {Case{file("good.pem"), file("missing.key"), "ingress.tls_key"},
                          Case{file("good.pem"), file("garbage.key"), "ingress.tls_key"},
                          Case{file("good.pem"), file("encrypted.key"), "ingress.tls_key: cannot load"},
                          Case{file("good.pem"), file("wrong.key"), "does not belong to the certificate"},
                          Case{file("missing.pem"), file("good.key"), "ingress.tls_cert"}}) {
        SCOPED_TRACE(c.cert + " " + c.key);
        auto cfg = daemon_config(db.url(), {{"us", "https://localhost:9"}});
        add_to_ingress(cfg, "tls_cert = \"" + c.cert + "\"\ntls_key = \"" + c.key + "\"\n");
        Daemon d(cfg.toml, "tls_bad_key");  // writes the config; started by hand to see the exit code
        auto [rc, out] = run_command("timeout 30 " + binary_dir() + "/outboxd --config " + d.config_path());
        EXPECT_EQ(rc, 1) << out;
        EXPECT_NE(out.find(c.names), std::string::npos) << out;
        EXPECT_EQ(http_request("GET", "127.0.0.1", cfg.metrics, "/readyz").status, 0) << "not left running";
        // outboxctl config show fails on the same errors as start-up.
        auto [crc, cout] = run_command(binary_dir() + "/outboxctl --config " + d.config_path() + " config show");
        EXPECT_EQ(crc, 1) << cout;
        EXPECT_NE(cout.find(c.names), std::string::npos) << cout;
        if (c.key == file("encrypted.key")) {
            EXPECT_NE(out.find("the key is encrypted"), std::string::npos) << out;
            EXPECT_EQ(out.find("pass phrase"), std::string::npos) << "no prompt\n" << out;
        }
    }
}
