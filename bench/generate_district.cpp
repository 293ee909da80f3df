// Deterministic synthetic district: OneRoster 1.1 or 1.2 CSV.
//
//   sw-generate-district --size small|medium|large|xlarge --out DIR [--seed N]
//                        [--version 1.1|1.2] [--change-rate R --changed-out DIR2]
//
// Same seed and size, same bytes. With --change-rate, a second export is
// written in which that fraction of users and of enrollments is added,
// changed or marked tobedeleted (a third each).
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// splitmix64: the same sequence on every platform, unlike std distributions.
struct rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    uint64_t below(uint64_t n) { return next() % n; }
    double unit() { return static_cast<double>(next() >> 11) / 9007199254740992.0; }
};

struct size_spec {
    uint64_t students, staff, classes, enrollments;
};

const char* k_given[] = {"Zoë", "José", "Amélie", "Noah", "Chloé", "Søren", "Aaliyah", "Mateo", "Łucja",
                         "Ethan", "Inès", "Björn", "Maya", "Liam", "Ana Sofía", "Kenji", "Oluwaseun",
                         "Élodie", "Hugo", "Priya", "Dmitri", "Fatima", "Mía", "Owen", "Nguyễn", "Ávila",
                         "Jürgen", "Siobhán", "Çağan", "Dagný", "Renée", "Tomás", "Grace", "Ada", "Yusuf"};
const char* k_family[] = {"García", "Nguyen", "O'Brien", "Müller", "Smith", "Kowalski", "Johnson", "Dubois",
                          "Jensen", "Martínez", "Okafor", "Lee", "Ødegaard", "Šimić", "Brontë", "Núñez",
                          "Rodríguez", "Zhang", "Patel", "Ó Súilleabháin", "Kim", "Haddad", "Björk", "Fernández"};
const char* k_grades[] = {"KG", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"};
constexpr size_t n_given = sizeof k_given / sizeof *k_given, n_family = sizeof k_family / sizeof *k_family;

// A buffered file writer: CSV rows by hand, quoting only where needed.
class out_file {
public:
    explicit out_file(const fs::path& p) : f_(std::fopen(p.c_str(), "wb")) {
        if (!f_) { std::perror(p.c_str()); std::exit(1); }
        buf_.reserve(1 << 20);
    }
    ~out_file() { flush(); std::fclose(f_); }
    out_file& field(std::string_view v) {
        if (!first_) buf_ += ',';
        first_ = false;
        if (v.find_first_of(",\"\n") != std::string_view::npos) {
            buf_ += '"';
            for (char c : v) { if (c == '"') buf_ += '"'; buf_ += c; }
            buf_ += '"';
        } else buf_.append(v);
        return *this;
    }
    out_file& num(uint64_t n) { char b[24]; auto r = std::to_chars(b, b + 24, n); return field({b, size_t(r.ptr - b)}); }
    void end() {
        buf_ += "\r\n";
        first_ = true;
        if (buf_.size() > (1 << 20)) flush();
    }
    void row(std::initializer_list<std::string_view> fields) { for (auto f : fields) field(f); end(); }

private:
    void flush() { std::fwrite(buf_.data(), 1, buf_.size(), f_); buf_.clear(); }
    std::FILE* f_;
    std::string buf_;
    bool first_ = true;
};

std::string id(const char* prefix, uint64_t n) {
    char b[32];
    std::snprintf(b, sizeof b, "%s%08llu", prefix, static_cast<unsigned long long>(n));
    return b;
}

std::string ascii_lower(std::string_view s) {
    std::string out;
    for (unsigned char c : s)
        if (c < 128 && c != ' ' && c != '\'') out += static_cast<char>(std::tolower(c));
    return out;
}

struct person { uint64_t given, family, school, grade; bool staff; };
enum class fate : uint8_t { same, changed, deleted };

struct district {
    size_spec sz;
    uint64_t schools;
    std::vector<person> people;
    std::vector<uint32_t> class_school;
    std::vector<std::pair<uint32_t, uint32_t>> enrollments;  // person, class
};

district build(const size_spec& sz, uint64_t seed) {
    rng r{seed};
    district d{sz, std::max<uint64_t>(2, (sz.students + sz.staff) / 1000), {}, {}, {}};
    d.class_school.resize(sz.classes);
    for (auto& c : d.class_school) c = static_cast<uint32_t>(r.below(d.schools));
    uint64_t total = sz.students + sz.staff;
    d.people.resize(total);
    for (uint64_t i = 0; i < total; ++i)
        d.people[i] = {r.below(n_given), r.below(n_family), r.below(d.schools), r.below(13), i >= sz.students};
    // One teacher per class, then students until the enrollment count is reached.
    d.enrollments.reserve(sz.enrollments);
    for (uint64_t c = 0; c < sz.classes; ++c)
        d.enrollments.push_back({static_cast<uint32_t>(sz.students + c % sz.staff), static_cast<uint32_t>(c)});
    uint64_t per = (sz.enrollments - sz.classes) / sz.students, extra = (sz.enrollments - sz.classes) % sz.students;
    for (uint64_t s = 0; s < sz.students; ++s)
        for (uint64_t k = 0; k < per + (s < extra); ++k)
            d.enrollments.push_back({static_cast<uint32_t>(s), static_cast<uint32_t>(r.below(sz.classes))});
    return d;
}

void write_export(const district& d, const fs::path& dir, const std::string& version, double rate, uint64_t seed) {
    fs::create_directories(dir);
    const bool v12 = version == "1.2";
    rng r{seed ^ 0xc0ffee};
    auto pick = [&]() {  // which third a changed record falls in
        if (rate <= 0 || r.unit() >= rate) return 0;
        return 1 + static_cast<int>(r.below(3));  // 1 added, 2 changed, 3 tobedeleted
    };
    {
        out_file m(dir / "manifest.csv");
        m.row({"propertyName", "value"});
        m.row({"manifest.version", "1.0"});
        m.row({"oneroster.version", version});
        for (const char* f : {"academicSessions", "classes", "courses", "enrollments", "orgs", "users"})
            m.row({std::string("file.") + f, "bulk"});
        m.row({"file.roles", v12 ? "bulk" : "absent"});
        for (const char* f : {"categories", "classResources", "courseResources", "demographics", "lineItems",
                              "resources", "results", "userProfiles"})
            m.row({std::string("file.") + f, "absent"});
    }
    {
        out_file o(dir / "orgs.csv");
        o.row({"sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"});
        o.row({"org-district", "", "", "Syncwarden Synthetic District", "district", "SSD", ""});
        for (uint64_t s = 0; s < d.schools; ++s)
            o.row({id("org-", s), "", "", "School " + std::to_string(s) + " – Écola", "school", std::to_string(1000 + s), "org-district"});
    }
    {
        out_file a(dir / "academicSessions.csv");
        a.row({"sourcedId", "status", "dateLastModified", "title", "type", "startDate", "endDate", "parentSourcedId", "schoolYear"});
        a.row({"as-2027", "", "", "2026-2027", "schoolYear", "2026-08-17", "2027-06-11", "", "2027"});
        a.row({"as-2027-t1", "", "", "Fall", "term", "2026-08-17", "2026-12-18", "as-2027", "2027"});
        a.row({"as-2027-t2", "", "", "Spring", "term", "2027-01-05", "2027-06-11", "as-2027", "2027"});
    }
    const uint64_t courses = std::max<uint64_t>(1, d.sz.classes / 5);
    {
        out_file c(dir / "courses.csv");
        c.row({"sourcedId", "status", "dateLastModified", "schoolYearSourcedId", "title", "courseCode", "grades", "orgSourcedId", "subjects", "subjectCodes"});
        for (uint64_t i = 0; i < courses; ++i)
            c.row({id("crs-", i), "", "", "as-2027", "Course " + std::to_string(i), "C" + std::to_string(i), k_grades[i % 13], "org-district", "Mathematics", "MAT"});
    }
    {
        out_file c(dir / "classes.csv");
        c.row({"sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId", "classCode", "classType", "location", "schoolSourcedId", "termSourcedIds", "subjects", "subjectCodes", "periods"});
        for (uint64_t i = 0; i < d.sz.classes; ++i)
            c.row({id("cls-", i), "", "", "Section " + std::to_string(i), k_grades[i % 13], id("crs-", i % courses),
                   "S" + std::to_string(i), "scheduled", "Room " + std::to_string(i % 300), id("org-", d.class_school[i]),
                   "as-2027-t1,as-2027-t2", "Mathematics", "MAT", std::to_string(1 + i % 8)});
    }
    {
        out_file u(dir / "users.csv");
        std::unique_ptr<out_file> roles;
        if (v12) {
            u.row({"sourcedId", "status", "dateLastModified", "enabledUser", "username", "userIds", "givenName", "familyName",
                   "middleName", "identifier", "email", "sms", "phone", "agentSourcedIds", "grades", "password",
                   "userMasterIdentifier", "preferredGivenName", "preferredMiddleName", "preferredFamilyName",
                   "primaryOrgSourcedId", "pronouns"});
            roles = std::make_unique<out_file>(dir / "roles.csv");
            roles->row({"sourcedId", "status", "dateLastModified", "userSourcedId", "roleType", "role", "beginDate",
                        "endDate", "orgSourcedId", "userProfileSourcedId"});
        } else {
            u.row({"sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role", "username", "userIds",
                   "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone", "agentSourcedIds",
                   "grades", "password"});
        }
        auto write_user = [&](uint64_t n, const person& p, const char* status, bool renamed) {
            std::string key = id(p.staff ? "stf-" : "stu-", n);
            std::string given = k_given[p.given], family = k_family[(p.family + renamed) % n_family];
            std::string uname = ascii_lower(given) + "." + ascii_lower(family) + std::to_string(n);
            std::string email = uname + (p.staff ? "@staff.example.org" : "@students.example.org");
            std::string org = id("org-", p.school), role = p.staff ? "teacher" : "student";
            std::string grade = p.staff ? "" : k_grades[p.grade];
            std::string ident = std::to_string(100000000 + n);
            std::string date = *status ? "2026-11-20" : "";
            if (v12) {
                u.row({key, status, date, "true", uname, "{SIS:" + ident + "}", given, family, "", ident, email, "", "",
                       "", grade, "", "", "", "", "", org, ""});
                roles->row({"rol-" + key, status, date, key, "primary", role, "", "", org, ""});
            } else {
                u.row({key, status, date, "TRUE", org, role, uname, "{SIS:" + ident + "}", given, family, "", ident, email,
                       "", "", "", grade, ""});
            }
        };
        std::vector<fate> fates(d.people.size(), fate::same);
        uint64_t added = 0;
        for (uint64_t i = 0; i < d.people.size(); ++i) {
            int f = pick();
            if (f == 1) ++added;
            if (f == 2) fates[i] = fate::changed;
            if (f == 3) fates[i] = fate::deleted;
            write_user(i, d.people[i], fates[i] == fate::deleted ? "tobedeleted" : "", fates[i] == fate::changed);
        }
        for (uint64_t k = 0; k < added; ++k) {
            person p = d.people[k % d.people.size()];
            p.staff = false;
            write_user(d.people.size() + k, p, "", false);
        }
    }
    {
        out_file e(dir / "enrollments.csv");
        e.row({"sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId", "userSourcedId", "role", "primary", "beginDate", "endDate"});
        uint64_t added = 0;
        auto write_enr = [&](uint64_t n, uint32_t person_i, uint32_t cls, const char* status, bool changed) {
            const person& p = d.people[person_i];
            e.row({id("enr-", n), status, *status ? "2026-11-20" : "", id("cls-", cls), id("org-", d.class_school[cls]),
                   id(p.staff ? "stf-" : "stu-", person_i), p.staff ? "teacher" : "student", p.staff ? "true" : "false",
                   changed ? "2026-09-01" : "2026-08-17", "2027-06-11"});
        };
        for (uint64_t i = 0; i < d.enrollments.size(); ++i) {
            int f = pick();
            if (f == 1) ++added;
            write_enr(i, d.enrollments[i].first, d.enrollments[i].second, f == 3 ? "tobedeleted" : "", f == 2);
        }
        for (uint64_t k = 0; k < added; ++k) {
            auto [p, c] = d.enrollments[k % d.enrollments.size()];
            write_enr(d.enrollments.size() + k, p, static_cast<uint32_t>((c + 1) % d.sz.classes), "", false);
        }
    }
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr, "error: %s\nusage: sw-generate-district --size small|medium|large|xlarge --out DIR [--seed N] "
                         "[--version 1.1|1.2] [--change-rate R --changed-out DIR2]\n", why);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string size, out, changed_out, version = "1.1";
    uint64_t seed = 20261126;
    double rate = 0;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string { if (i + 1 >= argc) usage((a + " needs a value").c_str()); return argv[++i]; };
        if (a == "--size") size = val();
        else if (a == "--out") out = val();
        else if (a == "--changed-out") changed_out = val();
        else if (a == "--version") version = val();
        else if (a == "--seed") seed = std::strtoull(val().c_str(), nullptr, 10);
        else if (a == "--change-rate") rate = std::strtod(val().c_str(), nullptr);
        else usage(("unknown option " + a).c_str());
    }
    size_spec sz;
    if (size == "small") sz = {9'000, 1'000, 200, 70'000};
    else if (size == "medium") sz = {90'000, 10'000, 2'000, 700'000};
    else if (size == "large") sz = {900'000, 100'000, 20'000, 7'000'000};
    else if (size == "xlarge") sz = {2'700'000, 300'000, 60'000, 21'000'000};
    else usage("--size must be small, medium, large or xlarge");
    if (out.empty()) usage("--out is required");
    if (version != "1.1" && version != "1.2") usage("--version must be 1.1 or 1.2");
    if (rate < 0 || rate > 1) usage("--change-rate must be between 0 and 1");
    if (rate > 0 && changed_out.empty()) usage("--change-rate needs --changed-out");
    district d = build(sz, seed);
    write_export(d, out, version, 0, seed);
    if (rate > 0) write_export(d, changed_out, version, rate, seed);
    return 0;
}
