// Config parsing: good files, every kind of bad value, unknown keys, durations, the env override.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "outboxd/config/config.hpp"

using namespace outboxd::config;

namespace {
const char* kGood = R"(
[database]
url = "postgresql:///x"
pool_size = 4

[ingress]
listen = "127.0.0.1:18080"
max_body_bytes = 2048

[drain]
concurrency = 8
request_timeout = "250ms"

[retry]
base_delay = "1s"
max_delay = "1h"
max_attempts = 3
max_age = "3d"

[[region]]
name = "us"
url = "http://127.0.0.1:9001/"
secret = "s1"

[[region]]
name = "eu"
url = "https://eu.example.com"
secret = "s2"

[provider.github]
webhook_secret = "gh"

[apps]
allow_private_urls = true
)";

std::string message_of(const std::string& text) {
    try {
        load_string(text);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST(Config, LoadsAGoodFile) {
    unsetenv("OUTBOXD_DATABASE_URL");
    auto c = load_string(kGood);
    EXPECT_EQ(c.database.url, "postgresql:///x");
    EXPECT_EQ(c.database.pool_size, 4);
    EXPECT_EQ(c.ingress.max_body_bytes, 2048);
    EXPECT_EQ(c.drain.request_timeout, Duration(250));
    EXPECT_EQ(c.retry.max_age, Duration(3LL * 86400 * 1000));
    ASSERT_EQ(c.regions.size(), 2u);
    EXPECT_EQ(c.regions[0].url, "http://127.0.0.1:9001") << "trailing slash trimmed";
    EXPECT_EQ(c.region("eu")->secret, "s2");
    EXPECT_EQ(c.region("nowhere"), nullptr);
    EXPECT_EQ(c.provider.github_webhook_secret, "gh");
    EXPECT_TRUE(c.apps.allow_private_urls);
    EXPECT_EQ(c.drain.batch_size, 100) << "defaults kept for absent keys";
}

TEST(Config, EnvironmentOverridesDatabaseUrl) {
    setenv("OUTBOXD_DATABASE_URL", "postgresql:///from_env", 1);
    auto c = load_string(kGood);
    unsetenv("OUTBOXD_DATABASE_URL");
    EXPECT_EQ(c.database.url, "postgresql:///from_env");
}

TEST(Config, UnknownKeyNamesTheKey) {
    EXPECT_NE(message_of("[drain]\nconcurency = 3\n").find("drain.concurency"), std::string::npos);
    EXPECT_NE(message_of("[nosuch]\nx = 1\n").find("nosuch.x"), std::string::npos);
    // A misspelt table with nothing in it is named too.
    EXPECT_NE(message_of("[drian]\n").find("drian: unknown table"), std::string::npos) << message_of("[drian]\n");
    EXPECT_NE(message_of("[provider.foo]\n").find("provider.foo"), std::string::npos);
    EXPECT_EQ(message_of("[drain]\n[provider.github]\n"), "") << "known tables may be empty";
    EXPECT_NE(message_of("[[region]]\nname=\"a\"\nurl=\"http://x\"\nsecret=\"s\"\ncolour=\"red\"\n").find("region[0].colour"),
              std::string::npos);
}

TEST(Config, BadValuesNameTheKey) {
    EXPECT_NE(message_of("[drain]\nrequest_timeout = \"10 parsecs\"\n").find("drain.request_timeout"), std::string::npos);
    EXPECT_NE(message_of("[drain]\nrequest_timeout = 10\n").find("drain.request_timeout"), std::string::npos);
    EXPECT_NE(message_of("[drain]\nconcurrency = \"many\"\n").find("drain.concurrency"), std::string::npos);
    EXPECT_NE(message_of("[drain]\nconcurrency = 0\n").find("drain.concurrency"), std::string::npos);
    EXPECT_NE(message_of("[apps]\nallow_private_urls = \"yes\"\n").find("apps.allow_private_urls"), std::string::npos);
    EXPECT_NE(message_of("[[region]]\nname=\"a\"\nurl=\"ftp://x\"\nsecret=\"s\"\n").find("region[0].url"), std::string::npos);
    EXPECT_NE(message_of("[[region]]\nname=\"a\"\nurl=\"http://x\"\n").find("region[0].secret"), std::string::npos);
    EXPECT_NE(message_of("[log]\nformat = \"xml\"\n").find("log.format"), std::string::npos);
    EXPECT_NE(message_of("[[region]]\nname=\"a\"\nurl=\"http://127.0.0.1:99999\"\nsecret=\"s\"\n").find("region[0].url"),
              std::string::npos);
    EXPECT_NE(message_of("[smtp]\nurl=\"smtp://mail:0\"\n").find("smtp.url"), std::string::npos);
    EXPECT_NE(message_of("[metrics]\nlisten = \"\"\n").find("metrics.listen"), std::string::npos);
    EXPECT_NE(message_of("[tls]\nca_file = \"/nonexistent/ca.pem\"\n").find("tls.ca_file"), std::string::npos);
    // Durations so large that deadlines computed from them overflowed (and wrapped to 384ms).
    EXPECT_NE(message_of("[retry]\nmax_age = \"18446744073709552s\"\n").find("retry.max_age"), std::string::npos);
    EXPECT_NE(message_of("[drain]\nlease = \"300000d\"\n").find("drain.lease"), std::string::npos);
    EXPECT_NE(message_of("[[region]]\nname=\"none\"\nurl=\"http://x\"\nsecret=\"s\"\n").find("region[0].name"),
              std::string::npos)
        << "'none' is the label of rows without a region";
    EXPECT_NE(message_of("[drain]\nlease = \"4s\"\nrequest_timeout = \"2s\"\n").find("drain.request_timeout"),
              std::string::npos)
        << "a request could outlive its lease";
    EXPECT_EQ(message_of("[drain]\nlease = \"4s\"\nrequest_timeout = \"1900ms\"\n[apps]\nrequest_timeout = \"1s\"\n"), "");
    EXPECT_NE(message_of("[drain]\nlease = \"4s\"\nrequest_timeout = \"1s\"\n[apps]\nrequest_timeout = \"3s\"\n")
                  .find("apps.request_timeout"),
              std::string::npos);
    EXPECT_NE(message_of("[provider.discord]\npublic_key = \"zz\"\n").find("provider.discord.public_key"), std::string::npos);
    EXPECT_NE(message_of("this is = = not toml").find("cannot parse"), std::string::npos);
}

// Values that only failed later, at connect or bind time, with a message that named no key.
TEST(Config, AddressesAndFilesAreCheckedAtLoadAndNameTheKey) {
    unsetenv("OUTBOXD_DATABASE_URL");
    auto region = [](const std::string& url) {
        return "[[region]]\nname=\"a\"\nurl=\"" + url + "\"\nsecret=\"s\"\n";
    };
    for (const char* url : {"http://", "https://:443", "http:///path", "http://x/?q=1", "http://x#f", "not a url"})
        EXPECT_NE(message_of(region(url)).find("region[0].url"), std::string::npos) << url;
    EXPECT_EQ(message_of(region("http://[::1]:9001/base")), "") << "an IPv6 host with a base path is fine";
    for (const char* listen : {"127.0.0.1:notaport", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1", "::1:80", "x:8080x"}) {
        EXPECT_NE(message_of(std::string("[ingress]\nlisten = \"") + listen + "\"\n").find("ingress.listen"),
                  std::string::npos)
            << listen;
        EXPECT_NE(message_of(std::string("[metrics]\nlisten = \"") + listen + "\"\n").find("metrics.listen"),
                  std::string::npos)
            << listen;
    }
    EXPECT_EQ(message_of("[ingress]\nlisten = \"[::1]:8080\"\n[metrics]\nlisten = \":9464\"\n"), "");
    EXPECT_NE(message_of("[database]\nurl = \"not a url\"\n").find("database.url"), std::string::npos);
    EXPECT_NE(message_of("[database]\nurl = \"postgresql://h/db?nosuchoption=1\"\n").find("database.url"),
              std::string::npos);
    EXPECT_EQ(message_of("[database]\nurl = \"host=/tmp dbname=x\"\n"), "") << "key=value strings are fine too";
    setenv("OUTBOXD_DATABASE_URL", "not a url", 1);
    EXPECT_NE(message_of("").find("OUTBOXD_DATABASE_URL"), std::string::npos);
    unsetenv("OUTBOXD_DATABASE_URL");
    EXPECT_NE(message_of("[smtp]\nurl = \"http://mail.example.com\"\n").find("smtp.url"), std::string::npos);
    EXPECT_NE(message_of("[smtp]\nurl = \"smtp://\"\n").find("smtp.url"), std::string::npos);
    EXPECT_EQ(message_of("[smtp]\nurl = \"smtps://mail.example.com:465\"\n"), "");
}

// A reload keeps what needs a restart and says so, secrets included (they are masked in every
// listing, so a changed secret must not look unchanged).
TEST(Config, ReloadNamesEveryKeptKeyIncludingSecrets) {
    unsetenv("OUTBOXD_DATABASE_URL");
    LiveConfig live(load_string(kGood));
    std::string changed = kGood;
    changed.replace(changed.find("secret = \"s2\""), 13, "secret = \"s9\"");
    changed.replace(changed.find("pool_size = 4"), 13, "pool_size = 6");
    auto kept = live.reload(load_string(changed));
    EXPECT_NE(std::find(kept.begin(), kept.end(), "region[1].secret"), kept.end());
    EXPECT_NE(std::find(kept.begin(), kept.end(), "database.pool_size"), kept.end());
    EXPECT_EQ(live.get()->region("eu")->secret, "s2") << "the running value is kept";
    EXPECT_TRUE(live.reload(load_string(changed)).size() == kept.size()) << "and reported again at the next reload";
}

TEST(Config, DuplicateRegionIsRefused) {
    auto m = message_of("[[region]]\nname=\"a\"\nurl=\"http://x\"\nsecret=\"s\"\n[[region]]\nname=\"a\"\nurl=\"http://y\"\nsecret=\"t\"\n");
    EXPECT_NE(m.find("duplicate"), std::string::npos) << m;
}

TEST(Config, Durations) {
    EXPECT_EQ(parse_duration("250ms"), Duration(250));
    EXPECT_EQ(parse_duration("5s"), Duration(5000));
    EXPECT_EQ(parse_duration("3m"), Duration(180000));
    EXPECT_EQ(parse_duration("1h"), Duration(3600000));
    EXPECT_EQ(parse_duration("3d"), Duration(259200000));
    EXPECT_THROW(parse_duration("5"), std::invalid_argument);
    EXPECT_THROW(parse_duration("s"), std::invalid_argument);
    EXPECT_THROW(parse_duration("-1s"), std::invalid_argument);
    EXPECT_THROW(parse_duration("1w"), std::invalid_argument);
    EXPECT_EQ(parse_duration("3650d"), Duration(3650LL * 86400 * 1000));
    EXPECT_THROW(parse_duration("3651d"), std::invalid_argument);
    EXPECT_THROW(parse_duration("9223372036854775807ms"), std::invalid_argument);
    EXPECT_EQ(format_duration(Duration(3600000)), "1h");
    EXPECT_EQ(format_duration(Duration(1500)), "1500ms");
}

TEST(Config, EveryKeyHasADoc) {
    for (const auto& k : known_keys()) {
        EXPECT_FALSE(k.doc.empty()) << k.path;
        EXPECT_FALSE(k.type.empty()) << k.path;
    }
}

TEST(Config, DescribeMasksSecrets) {
    auto c = load_string(kGood);
    for (const auto& [k, v] : describe(c)) {
        if (k.find("secret") != std::string::npos || k == "database.url") {
            EXPECT_TRUE(v.empty() || v == "********") << k;
        }
    }
}

// A file that is consistent on its own can be inconsistent with what a reload keeps: a request
// timeout raised together with the lease it needs would run against the old lease, and a shard
// could be claimed again while its request is still out. Such a reload is refused whole.
TEST(Config, AReloadIsCheckedWithTheValuesItKeeps) {
    unsetenv("OUTBOXD_DATABASE_URL");
    LiveConfig live(load_string("[drain]\nlease = \"4s\"\nrequest_timeout = \"1s\"\n"));
    try {
        live.reload(load_string("[drain]\nlease = \"20s\"\nrequest_timeout = \"6s\"\n"));
        FAIL() << "reloaded a request timeout longer than half of the running lease";
    } catch (const std::exception& e) {
        std::string m = e.what();
        EXPECT_NE(m.find("drain.request_timeout"), std::string::npos) << m;
        EXPECT_NE(m.find("restart"), std::string::npos) << m;
    }
    EXPECT_EQ(live.get()->drain.request_timeout, std::chrono::seconds(1)) << "the running configuration stays";
    EXPECT_NO_THROW(live.reload(load_string("[drain]\nlease = \"4s\"\nrequest_timeout = \"1500ms\"\n")));
    EXPECT_EQ(live.get()->drain.request_timeout, std::chrono::milliseconds(1500));
}

TEST(Config, UrlSchemesAreCaseInsensitive) {
    EXPECT_EQ(message_of("[[region]]\nname = \"eu\"\nurl = \"HTTPS://eu.example.com\"\nsecret = \"s\"\n"), "");
    EXPECT_NE(message_of("[[region]]\nname = \"eu\"\nurl = \"ftp://eu.example.com\"\nsecret = \"s\"\n").find("region"),
              std::string::npos);
}
