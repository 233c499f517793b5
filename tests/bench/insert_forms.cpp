// What PostgreSQL spends per outbox row for three ways a group-commit writer can store a batch
// (finding 31 in docs/BENCHMARKS.md). One session, batches of --batch rows of the push fixture's
// size, in the schema `outboxd migrate` made; prints one Markdown table row per form with the
// backend's CPU per row (from /proc, so the server must run on this machine) and the wall rate.
//
//   unnest        the writer's statement: one INSERT … SELECT FROM unnest($n) with binary arrays,
//                 advisory locks per mailbox in an InitPlan, its own transaction (one round trip)
//   unnest+notify the same, then the writer's separate NOTIFY transaction
//   copy          BEGIN and the same locks (pipelined), COPY … FROM STDIN (FORMAT binary), COMMIT
//
// The INSERT text is kept in step with src/outbox/outbox_writer.cpp by hand: this is an
// experiment to rerun when the writer changes, not a second writer.
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

PGconn* conn;

[[noreturn]] void fail(const char* what, const char* detail) {
    std::fprintf(stderr, "insert_forms: %s: %s\n", what, detail);
    std::exit(1);
}

void expect_ok(PGresult* r, const char* what) {
    auto s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_PIPELINE_SYNC)
        fail(what, PQresultErrorMessage(r));
    PQclear(r);
}

double cpu_seconds(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(f, line);
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::string field;
    long ticks = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i)
        if (i == 14 || i == 15) ticks += std::atol(field.c_str());
    return double(ticks) / double(sysconf(_SC_CLK_TCK));
}

void put16(std::string& o, int16_t v) {
    uint16_t n = htons(static_cast<uint16_t>(v));
    o.append(reinterpret_cast<char*>(&n), 2);
}
void put32(std::string& o, int32_t v) {
    uint32_t n = htonl(static_cast<uint32_t>(v));
    o.append(reinterpret_cast<char*>(&n), 4);
}
void put_field(std::string& o, const std::string& v) {
    put32(o, static_cast<int32_t>(v.size()));
    o += v;
}
std::string int8_bytes(int64_t v) {
    std::string o;
    put32(o, static_cast<int32_t>(static_cast<uint64_t>(v) >> 32));
    put32(o, static_cast<int32_t>(v & 0xffffffff));
    return o;
}
// A one-dimensional binary array; all NULL when `nulls`.
std::string binary_array(unsigned oid, const std::vector<std::string>& v, bool nulls = false) {
    std::string o;
    put32(o, 1);
    put32(o, nulls ? 1 : 0);
    put32(o, static_cast<int32_t>(oid));
    put32(o, static_cast<int32_t>(v.size()));
    put32(o, 1);
    for (const auto& e : v) {
        if (nulls) put32(o, -1);
        else put_field(o, e);
    }
    return o;
}

constexpr const char* kInsertRows = R"(
INSERT INTO control_outbox (region_name, mailbox_name, category, provider, integration_id,
                            request_method, request_path, request_headers, request_body, target_url)
SELECT r.region_name, r.mailbox_name, r.category, r.provider, r.integration_id,
       r.request_method, r.request_path, r.request_headers::jsonb, r.request_body, r.target_url
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
            $7::text[], $8::text[], $9::text[], $10::bytea[], $11::text[]) WITH ORDINALITY
     AS r(region_name, mailbox_name, category, provider, integration_id,
          request_method, request_path, request_headers, request_body, target_url, n)
WHERE (SELECT count(pg_advisory_xact_lock(7401, h))
       FROM (SELECT DISTINCT hashtext(m) AS h FROM unnest($1::text[]) AS m ORDER BY 1) s) >= 0
ORDER BY r.n)";
constexpr const char* kLocks =
    "SELECT count(pg_advisory_xact_lock(7401, h)) "
    "FROM (SELECT DISTINCT hashtext(m) AS h FROM unnest($1::text[]) AS m ORDER BY 1) s";
constexpr const char* kCopy =
    "COPY control_outbox (region_name, mailbox_name, category, provider, integration_id, request_method, "
    "request_path, request_headers, request_body, target_url) FROM STDIN (FORMAT binary)";
constexpr const char* kNotify = "BEGIN; SET LOCAL synchronous_commit = off; NOTIFY outboxd_outbox; COMMIT";

struct Batch {
    std::vector<std::string> region, mailbox, category, provider, integration, method, path, headers, body;
};

Batch make_batch(int rows, int& seq, const std::string& body, const std::string& headers) {
    Batch b;
    for (int i = 0; i < rows; ++i, ++seq) {
        b.region.push_back("us");
        b.mailbox.push_back("github:" + std::to_string(seq % 1000));
        b.category.push_back("webhook_proxy");
        b.provider.push_back("github");
        b.integration.push_back(int8_bytes(seq % 1000));
        b.method.push_back("POST");
        b.path.push_back("/extensions/github/webhook/");
        b.headers.push_back(headers);
        b.body.push_back(body);
    }
    return b;
}

void store_unnest(const Batch& b, bool notify) {
    std::string a[11] = {binary_array(25, b.mailbox),   binary_array(25, b.region),
                         binary_array(25, b.mailbox),   binary_array(25, b.category),
                         binary_array(25, b.provider),  binary_array(20, b.integration),
                         binary_array(25, b.method),    binary_array(25, b.path),
                         binary_array(25, b.headers),   binary_array(17, b.body),
                         binary_array(25, b.method, true)};
    const char* values[11];
    int lengths[11], formats[11];
    for (int i = 0; i < 11; ++i) {
        values[i] = a[i].data();
        lengths[i] = static_cast<int>(a[i].size());
        formats[i] = 1;
    }
    expect_ok(PQexecPrepared(conn, "insert_rows", 11, values, lengths, formats, 0), "insert");
    if (notify) expect_ok(PQexec(conn, kNotify), "notify");
}

void store_copy(const Batch& b) {
    std::string mailboxes = binary_array(25, b.mailbox);
    const char* values[1] = {mailboxes.data()};
    int lengths[1] = {static_cast<int>(mailboxes.size())}, formats[1] = {1};
    if (PQenterPipelineMode(conn) != 1) fail("pipeline", PQerrorMessage(conn));
    PQsendQueryParams(conn, "BEGIN", 0, nullptr, nullptr, nullptr, nullptr, 0);
    PQsendQueryPrepared(conn, "lock_mailboxes", 1, values, lengths, formats, 0);
    PQpipelineSync(conn);
    for (int i = 0; i < 2; ++i) {
        expect_ok(PQgetResult(conn), "begin/locks");
        if (PGresult* end = PQgetResult(conn)) PQclear(end);
    }
    expect_ok(PQgetResult(conn), "sync");
    PQexitPipelineMode(conn);
    PGresult* r = PQexec(conn, kCopy);
    if (PQresultStatus(r) != PGRES_COPY_IN) fail("copy", PQresultErrorMessage(r));
    PQclear(r);
    std::string o("PGCOPY\n\377\r\n\0", 11);
    put32(o, 0);
    put32(o, 0);
    for (size_t i = 0; i < b.body.size(); ++i) {
        put16(o, 10);
        put_field(o, b.region[i]);
        put_field(o, b.mailbox[i]);
        put_field(o, b.category[i]);
        put_field(o, b.provider[i]);
        put_field(o, b.integration[i]);
        put_field(o, b.method[i]);
        put_field(o, b.path[i]);
        put32(o, static_cast<int32_t>(b.headers[i].size() + 1));  // jsonb binary: version 1, then text
        o += '\1';
        o += b.headers[i];
        put_field(o, b.body[i]);
        put32(o, -1);
    }
    put16(o, -1);
    if (PQputCopyData(conn, o.data(), static_cast<int>(o.size())) != 1 || PQputCopyEnd(conn, nullptr) != 1)
        fail("copy data", PQerrorMessage(conn));
    expect_ok(PQgetResult(conn), "copy end");
    while (PGresult* x = PQgetResult(conn)) PQclear(x);
    expect_ok(PQexec(conn, "COMMIT"), "commit");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: insert_forms FORM BATCHES ROWS_PER_BATCH  (FORM: unnest, unnest+notify, copy; "
                             "connection from the PG* environment)\n");
        return 2;
    }
    std::string form = argv[1];
    int batches = std::atoi(argv[2]), per = std::atoi(argv[3]);
    conn = PQconnectdb("");
    if (PQstatus(conn) != CONNECTION_OK) fail("connect", PQerrorMessage(conn));
    PGresult* r = PQexec(conn, "SELECT pg_backend_pid()");
    int pid = std::atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    expect_ok(PQprepare(conn, "insert_rows", kInsertRows, 0, nullptr), "prepare insert");
    expect_ok(PQprepare(conn, "lock_mailboxes", kLocks, 0, nullptr), "prepare locks");

    // The push fixture's shape: a 1.7 KB JSON body of commit ids that does not compress much.
    std::string body = R"({"ref":"refs/heads/main","commits":[)";
    unsigned state = 1;
    while (body.size() < 1700) {
        body += R"({"id":")";
        for (int i = 0; i < 40; ++i) body += "0123456789abcdef"[(state = state * 1103515245 + 12345) >> 28];
        body += R"(","message":"fix"},)";
    }
    body += "{}]}";
    const std::string headers =
        R"([["X-GitHub-Event","push"],["X-GitHub-Delivery","72d3162e-cc78-11e3-81ab-4c9367dc0958"],)"
        R"(["X-Hub-Signature-256","sha256=)" + std::string(64, 'a') +
        R"("],["User-Agent","GitHub-Hookshot/044aadd"],["Content-Type","application/json"]])";

    int seq = 0;
    double cpu0 = cpu_seconds(pid);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < batches; ++i) {
        Batch b = make_batch(per, seq, body, headers);
        if (form == "copy") store_copy(b);
        else if (form == "unnest") store_unnest(b, false);
        else if (form == "unnest+notify") store_unnest(b, true);
        else fail("form", form.c_str());
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = cpu_seconds(pid) - cpu0;
    int rows = batches * per;
    std::printf("| %s | %d | %d | %.1f | %.0f |\n", form.c_str(), per, rows, cpu * 1e6 / rows, rows / wall);
    PQfinish(conn);
}
