// Resolves integrations and their regions from the domain tables (integration →
// organization_integration → organization_mapping).
#include <boost/json.hpp>

#include "outboxd/ingress/router.hpp"

namespace outboxd::ingress {
namespace {
constexpr const char* kByExternalId =
    "SELECT id, provider, external_id, status, metadata::text FROM integration WHERE provider = $1 AND external_id = $2";
constexpr const char* kById = "SELECT id, provider, external_id, status, metadata::text FROM integration WHERE id = $1";
constexpr const char* kOrganizationRegion = "SELECT region_name FROM organization_mapping WHERE organization_id = $1";
constexpr const char* kActiveRegions = R"(
SELECT DISTINCT m.region_name
FROM organization_integration oi
JOIN organization_mapping m ON m.organization_id = oi.organization_id
WHERE oi.integration_id = $1 AND oi.status = 'active'
ORDER BY 1)";

std::optional<Integration> from_row(const db::Result& r) {
    if (r.rows() == 0) return std::nullopt;
    Integration i;
    i.id = r.int64(0, 0);
    i.provider = r.text(0, 1);
    i.external_id = r.text(0, 2);
    i.status = r.text(0, 3);
    boost::system::error_code ec;
    auto md = boost::json::parse(r.get(0, 4), ec);
    if (!ec && md.is_object()) i.metadata = md.as_object();
    return i;
}
}  // namespace

std::optional<Integration> PgDirectory::integration_by_external_id(const std::string& provider,
                                                                   const std::string& external_id) {
    // A key no integration can have, not a question for the database: a decoded form field or a
    // JSON string may hold any bytes, and PostgreSQL would refuse invalid UTF-8 (a 503 the
    // provider retries forever) or match a NUL-truncated prefix (another integration).
    if (!storable_text(external_id)) return std::nullopt;
    return from_row(conn_.exec_prepared("integration_by_external_id", kByExternalId, db::Params(provider, external_id)));
}

std::optional<Integration> PgDirectory::integration_by_id(std::int64_t id) {
    return from_row(conn_.exec_prepared("integration_by_id", kById, db::Params(id)));
}

std::optional<std::string> PgDirectory::organization_region(std::int64_t organization_id) {
    auto r = conn_.exec_prepared("organization_region", kOrganizationRegion, db::Params(organization_id));
    if (r.rows() == 0) return std::nullopt;
    return r.text(0, 0);
}

std::vector<std::string> active_regions(db::Connection& conn, std::int64_t integration_id) {
    auto r = conn.exec_prepared("integration_active_regions", kActiveRegions, db::Params(integration_id));
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
    return out;
}

}  // namespace outboxd::ingress
