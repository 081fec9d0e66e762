#pragma once
// An independent reader of the Prometheus text format for tests: parses an exposition and
// reports what promtool does not catch — duplicate series, samples without a TYPE line,
// histograms without a +Inf bucket, cumulative buckets that decrease or whose bounds are
// not increasing, _count that differs from the +Inf bucket, a missing _sum.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace penne::test {

struct exposition_sample {
    std::string name;
    std::vector<std::pair<std::string, std::string>> labels;  // unescaped values
    double value = 0;
};

inline double parse_prom_value(const std::string& v) {
    if (v == "+Inf" || v == "Inf")
        return INFINITY;
    if (v == "-Inf")
        return -INFINITY;
    if (v == "NaN")
        return NAN;
    return std::strtod(v.c_str(), nullptr);
}

// Returns false (with a message) when a line does not parse.
inline bool parse_sample_line(const std::string& line, exposition_sample& s, std::string& err) {
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ')
        ++i;
    s.name = line.substr(0, i);
    s.labels.clear();
    if (i < line.size() && line[i] == '{') {
        ++i;
        while (i < line.size() && line[i] != '}') {
            std::size_t eq = line.find('=', i);
            if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
                err = "bad label in: " + line;
                return false;
            }
            std::string lname = line.substr(i, eq - i);
            std::string value;
            std::size_t j = eq + 2;
            for (; j < line.size() && line[j] != '"'; ++j) {
                if (line[j] == '\\' && j + 1 < line.size()) {
                    char e = line[++j];
                    value += e == 'n' ? '\n' : e;
                } else {
                    value += line[j];
                }
            }
            if (j >= line.size()) {
                err = "unterminated label value in: " + line;
                return false;
            }
            s.labels.emplace_back(lname, value);
            i = j + 1;
            if (i < line.size() && line[i] == ',')
                ++i;
        }
        if (i >= line.size()) {
            err = "unterminated label set in: " + line;
            return false;
        }
        ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') {
        err = "no value in: " + line;
        return false;
    }
    std::string rest = line.substr(i + 1);
    if (auto sp = rest.find(' '); sp != std::string::npos)
        rest = rest.substr(0, sp);  // a timestamp may follow
    s.value = parse_prom_value(rest);
    return true;
}

inline std::vector<std::string> check_exposition(const std::string& text) {
    std::vector<std::string> problems;
    std::map<std::string, std::string> types;  // family -> type
    std::set<std::string> series_seen;
    struct hist_series {
        std::vector<std::pair<double, double>> buckets;  // (le, cumulative), output order
        bool has_inf = false;
        double inf = 0;
        bool has_count = false;
        double count = 0;
        bool has_sum = false;
    };
    std::map<std::string, hist_series> hists;  // family + labels without le

    auto family_of = [&](const std::string& name, std::string& suffix) {
        for (const char* suf : {"_bucket", "_count", "_sum"}) {
            std::string s = suf;
            if (name.size() > s.size() && name.ends_with(s)) {
                std::string base = name.substr(0, name.size() - s.size());
                if (types.count(base) && types[base] == "histogram") {
                    suffix = s;
                    return base;
                }
            }
        }
        suffix.clear();
        return name;
    };

    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty())
            continue;
        if (line.starts_with("# TYPE ")) {
            std::istringstream ls(line.substr(7));
            std::string name, type;
            ls >> name >> type;
            if (types.count(name))
                problems.push_back("second TYPE line for " + name);
            types[name] = type;
            continue;
        }
        if (line[0] == '#')
            continue;
        exposition_sample s;
        std::string err;
        if (!parse_sample_line(line, s, err)) {
            problems.push_back(err);
            continue;
        }
        std::string suffix;
        std::string family = family_of(s.name, suffix);
        if (!types.count(family))
            problems.push_back("sample without TYPE: " + s.name);
        auto sorted = s.labels;
        std::sort(sorted.begin(), sorted.end());
        std::string key = s.name + "{";
        std::string key_without_le = family + "{";
        std::string le;
        bool has_le = false;
        for (const auto& [k, v] : sorted) {
            key += k + "=\"" + v + "\",";
            if (k == "le") {
                le = v;
                has_le = true;
            } else {
                key_without_le += k + "=\"" + v + "\",";
            }
        }
        if (!series_seen.insert(key).second)
            problems.push_back("duplicate series " + key);
        if (types[family] == "counter" && !(s.value >= 0))
            problems.push_back("negative or NaN counter " + key);
        if (suffix.empty())
            continue;
        auto& h = hists[key_without_le];
        if (suffix == "_bucket") {
            if (!has_le) {
                problems.push_back("bucket without le: " + key);
                continue;
            }
            double bound = parse_prom_value(le);
            h.buckets.emplace_back(bound, s.value);
            if (std::isinf(bound) && bound > 0) {
                h.has_inf = true;
                h.inf = s.value;
            }
        } else if (suffix == "_count") {
            h.has_count = true;
            h.count = s.value;
        } else {
            h.has_sum = true;
        }
    }
    for (const auto& [key, h] : hists) {
        if (!h.has_inf)
            problems.push_back("histogram without le=\"+Inf\": " + key);
        if (!h.has_count)
            problems.push_back("histogram without _count: " + key);
        if (!h.has_sum)
            problems.push_back("histogram without _sum: " + key);
        if (h.has_inf && h.has_count && h.inf != h.count)
            problems.push_back("_count differs from the +Inf bucket: " + key);
        for (std::size_t i = 1; i < h.buckets.size(); ++i) {
            if (!(h.buckets[i].first > h.buckets[i - 1].first))
                problems.push_back("bucket bounds not increasing: " + key);
            if (h.buckets[i].second < h.buckets[i - 1].second)
                problems.push_back("cumulative buckets decrease: " + key);
        }
    }
    return problems;
}

}  // namespace penne::test
