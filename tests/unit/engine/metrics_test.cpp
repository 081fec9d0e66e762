// The metrics registry and its Prometheus text exposition: exact output, escaping, histogram
// invariants, the cardinality bound, the per-collection switch, age gauges on an injected
// clock, concurrent updates with exact totals, and the pipeline metric declarations.

#include <penne/metrics.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using penne::metrics_options;
using penne::metrics_registry;

// One parsed sample line: series (name plus label text) and value.
struct sample {
    std::string name;
    std::string labels;  // the text between the braces, as rendered
    double value;
};

std::vector<sample> samples(const std::string& text) {
    std::vector<sample> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#')
            continue;
        auto sp = line.rfind(' ');
        std::string series = line.substr(0, sp);
        sample s;
        auto brace = series.find('{');
        s.name = series.substr(0, brace);
        if (brace != std::string::npos)
            s.labels = series.substr(brace + 1, series.size() - brace - 2);
        std::string v = line.substr(sp + 1);
        s.value = v == "+Inf" ? INFINITY : std::stod(v);
        out.push_back(s);
    }
    return out;
}

// The invariants promtool does not check: no duplicate series; every histogram series has
// a +Inf bucket equal to its _count, and cumulative buckets never decrease.
void expect_well_formed(const std::string& text) {
    auto all = samples(text);
    std::set<std::string> seen;
    for (const auto& s : all)
        EXPECT_TRUE(seen.insert(s.name + "{" + s.labels + "}").second)
            << "duplicate series " << s.name << "{" << s.labels << "}";
    // Group buckets by histogram name + labels without le.
    std::map<std::string, std::vector<double>> buckets;
    std::map<std::string, double> inf, count;
    for (const auto& s : all) {
        if (s.name.ends_with("_bucket")) {
            auto le = s.labels.rfind("le=\"");
            ASSERT_NE(le, std::string::npos);
            std::string rest = s.labels.substr(0, le);
            std::string key = s.name.substr(0, s.name.size() - 7) + "{" + rest;
            if (key.ends_with(","))
                key.pop_back();
            buckets[key].push_back(s.value);
            if (s.labels.substr(le) == "le=\"+Inf\"")
                inf[key] = s.value;
        } else if (s.name.ends_with("_count")) {
            count[s.name.substr(0, s.name.size() - 6) + "{" + s.labels] = s.value;
        }
    }
    for (const auto& [key, values] : buckets) {
        for (std::size_t i = 1; i < values.size(); ++i)
            EXPECT_LE(values[i - 1], values[i]) << key;
        ASSERT_TRUE(inf.count(key)) << "no +Inf bucket for " << key;
        ASSERT_TRUE(count.count(key)) << "no _count for " << key;
        EXPECT_EQ(inf[key], count[key]) << key;
    }
}

TEST(Metrics, ExactExposition) {
    metrics_registry reg;
    auto c = reg.counters("penne_test_events_total", "Events seen", {"scope", "operation"});
    c.with({"db.b", "insert"}).inc(3);
    c.with({"db.a", "update"}).inc();
    c.with({"db.a", "insert"}).inc(2);
    auto g = reg.gauges("penne_test_buffered_bytes", "Bytes held");
    g.with({}).set(1536);
    auto h = reg.histograms("penne_test_latency_seconds", "Latency", {"scope"}, {0.1, 0.5, 1});
    auto hs = h.with({"db.a"});
    hs.observe(0.1);  // bounds are inclusive: lands in le="0.1"
    hs.observe(0.3);
    hs.observe(7);
    auto frac = reg.counters("penne_test_seconds_total", "Seconds").with({});
    frac.add(0.25);
    frac.inc(1);

    const std::string expected =
        "# HELP penne_test_buffered_bytes Bytes held\n"
        "# TYPE penne_test_buffered_bytes gauge\n"
        "penne_test_buffered_bytes 1536\n"
        "# HELP penne_test_events_total Events seen\n"
        "# TYPE penne_test_events_total counter\n"
        "penne_test_events_total{scope=\"db.a\",operation=\"insert\"} 2\n"
        "penne_test_events_total{scope=\"db.a\",operation=\"update\"} 1\n"
        "penne_test_events_total{scope=\"db.b\",operation=\"insert\"} 3\n"
        "# HELP penne_test_latency_seconds Latency\n"
        "# TYPE penne_test_latency_seconds histogram\n"
        "penne_test_latency_seconds_bucket{scope=\"db.a\",le=\"0.1\"} 1\n"
        "penne_test_latency_seconds_bucket{scope=\"db.a\",le=\"0.5\"} 2\n"
        "penne_test_latency_seconds_bucket{scope=\"db.a\",le=\"1\"} 2\n"
        "penne_test_latency_seconds_bucket{scope=\"db.a\",le=\"+Inf\"} 3\n"
        "penne_test_latency_seconds_sum{scope=\"db.a\"} 7.4\n"
        "penne_test_latency_seconds_count{scope=\"db.a\"} 3\n"
        "# HELP penne_test_seconds_total Seconds\n"
        "# TYPE penne_test_seconds_total counter\n"
        "penne_test_seconds_total 1.25\n";
    EXPECT_EQ(reg.render(), expected);
    EXPECT_EQ(hs.count(), 3u);
    EXPECT_DOUBLE_EQ(hs.sum(), 7.4);
    EXPECT_DOUBLE_EQ(frac.value(), 1.25);
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
    metrics_registry reg;
    auto c = reg.counters("penne_test_total", "Help with \\ and\nnewline", {"collection"});
    c.with({"a\\b\"c\nd"}).inc();
    c.with({std::string_view("bad\xff\xfe utf8", 10)}).inc();
    c.with({"caf\xc3\xa9"}).inc();  // valid UTF-8 passes through
    std::string text = reg.render();
    EXPECT_NE(text.find("# HELP penne_test_total Help with \\\\ and\\nnewline\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("penne_test_total{collection=\"a\\\\b\\\"c\\nd\"} 1\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("penne_test_total{collection=\"bad\xEF\xBF\xBD\xEF\xBF\xBD utf8\"} 1\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("penne_test_total{collection=\"caf\xc3\xa9\"} 1\n"), std::string::npos);
}

TEST(Metrics, HistogramInvariantsAndBucketEdges) {
    metrics_registry reg;
    auto h = reg.histograms("penne_test_sizes", "Sizes", {"k"}, penne::exponential_buckets(1, 2, 8))
                 .with({"x"});
    // Every bound exactly, a value between bounds, below the first and above the last.
    for (double v : {1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 3.0, 0.5, -1.0, 1e9})
        h.observe(v);
    h.observe(NAN);  // ignored
    std::string text = reg.render();
    expect_well_formed(text);
    auto all = samples(text);
    std::map<std::string, double> by_le;
    for (const auto& s : all)
        if (s.name == "penne_test_sizes_bucket")
            by_le[s.labels] = s.value;
    EXPECT_EQ(by_le["k=\"x\",le=\"1\""], 3);  // 1, 0.5, -1
    EXPECT_EQ(by_le["k=\"x\",le=\"2\""], 4);
    EXPECT_EQ(by_le["k=\"x\",le=\"4\""], 6);  // + 3 and 4
    EXPECT_EQ(by_le["k=\"x\",le=\"128\""], 11);
    EXPECT_EQ(by_le["k=\"x\",le=\"+Inf\""], 12);
    EXPECT_EQ(h.count(), 12u);
}

TEST(Metrics, CardinalityBoundRefusesAndCounts) {
    metrics_registry reg(metrics_options{.max_series = 2});
    auto c = reg.counters("penne_test_total", "t", {"collection"});
    c.with({"a"}).inc(1);
    c.with({"b"}).inc(2);
    auto refused = c.with({"c"});
    refused.inc(100);       // goes to the hidden overflow cell
    c.with({"d"}).inc();    // refused too
    c.with({"a"}).inc(10);  // existing series still found
    std::string text = reg.render();
    EXPECT_NE(text.find("penne_test_total{collection=\"a\"} 11\n"), std::string::npos) << text;
    EXPECT_NE(text.find("penne_test_total{collection=\"b\"} 2\n"), std::string::npos);
    EXPECT_EQ(text.find("collection=\"c\""), std::string::npos);
    EXPECT_EQ(text.find("collection=\"d\""), std::string::npos);
    EXPECT_NE(text.find("penne_metrics_series_dropped_total{metric=\"penne_test_total\"} 2\n"),
              std::string::npos)
        << text;
    expect_well_formed(text);
}

TEST(Metrics, PerCollectionLabelsOffAggregates) {
    metrics_registry reg(metrics_options{.per_collection_labels = false});
    auto c = reg.counters("penne_test_total", "t", {"scope", "collection"});
    c.with({"db", "a"}).inc(2);
    c.with({"db", "b"}).inc(3);
    auto only = reg.gauges("penne_test_queue", "q", {"collection"});
    only.with({"a"}).add(4);
    only.with({"b"}).add(1);
    std::string text = reg.render();
    EXPECT_NE(text.find("penne_test_total{scope=\"db\"} 5\n"), std::string::npos) << text;
    EXPECT_NE(text.find("penne_test_queue 5\n"), std::string::npos) << text;
    EXPECT_EQ(text.find("collection="), std::string::npos);
}

TEST(Metrics, AgeGaugeUsesInjectedClockAndHidesUnset) {
    auto now = std::chrono::system_clock::time_point(1'700'000'000s);
    metrics_registry reg(metrics_options{.clock = [&] { return now; }});
    auto lag = reg.age_gauges("penne_test_lag_seconds", "lag", {"scope"});
    auto a = lag.with({"a"});
    auto b = lag.with({"b"});
    a.set(now - 1500ms);
    std::string text = reg.render();
    EXPECT_NE(text.find("penne_test_lag_seconds{scope=\"a\"} 1.5\n"), std::string::npos) << text;
    EXPECT_EQ(text.find("scope=\"b\""), std::string::npos);  // never set: absent
    now += 10s;
    b.set(now + 5s);  // a clock that steps back never exposes a negative age
    text = reg.render();
    EXPECT_NE(text.find("penne_test_lag_seconds{scope=\"a\"} 11.5\n"), std::string::npos) << text;
    EXPECT_NE(text.find("penne_test_lag_seconds{scope=\"b\"} 0\n"), std::string::npos) << text;
    a.clear();
    b.clear();
    EXPECT_EQ(reg.render().find("penne_test_lag_seconds"), std::string::npos);
}

TEST(Metrics, RegistrationRules) {
    metrics_registry reg;
    EXPECT_THROW(reg.counters("1bad", "x"), std::invalid_argument);
    EXPECT_THROW(reg.counters("penne-bad", "x"), std::invalid_argument);
    EXPECT_THROW(reg.counters("penne_ok_total", "x", {"__reserved"}), std::invalid_argument);
    EXPECT_THROW(reg.counters("penne_ok_total", "x", {"a", "a"}), std::invalid_argument);
    EXPECT_THROW(reg.histograms("penne_h", "x", {"le"}, {1}), std::invalid_argument);
    EXPECT_THROW(reg.histograms("penne_h", "x", {}, {2, 1}), std::invalid_argument);
    EXPECT_THROW(reg.histograms("penne_h", "x", {}, {1, INFINITY}), std::invalid_argument);

    auto first = reg.counters("penne_same_total", "x", {"a"});
    auto again = reg.counters("penne_same_total", "x", {"a"});
    first.with({"v"}).inc();
    again.with({"v"}).inc();  // the same family, the same series
    EXPECT_DOUBLE_EQ(first.with({"v"}).value(), 2);
    EXPECT_THROW(reg.gauges("penne_same_total", "x", {"a"}), std::invalid_argument);
    EXPECT_THROW(reg.counters("penne_same_total", "x", {"b"}), std::invalid_argument);
    EXPECT_THROW(first.with({"v", "w"}), std::invalid_argument);
}

TEST(Metrics, DetachedHandlesAreNoOps) {
    penne::counter c;
    penne::gauge g;
    penne::histogram h;
    penne::age_gauge a;
    penne::counter_family f;
    c.inc(5);
    c.add(1.5);
    g.set(3);
    h.observe(1);
    a.set(std::chrono::system_clock::now());
    f.with({"x"}).inc();
    EXPECT_EQ(c.value(), 0);
    EXPECT_EQ(g.value(), 0);
    EXPECT_EQ(h.count(), 0u);
}

TEST(Metrics, ConcurrentUpdatesGiveExactTotals) {
    metrics_registry reg;
    auto fam = reg.counters("penne_test_total", "t", {"worker"});
    auto shared = reg.counters("penne_test_shared_total", "t").with({});
    auto hist = reg.histograms("penne_test_h", "h", {}, {10, 100, 1000}).with({});
    auto gauge = reg.gauges("penne_test_g", "g").with({});
    constexpr int threads = 4;
    constexpr int per_thread = 200'000;
    std::atomic<bool> done{false};
    std::thread scraper([&] {
        // Scrapes while writers run: every snapshot must already be well formed.
        while (!done.load()) {
            std::string text = reg.render();
            expect_well_formed(text);
        }
    });
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            auto mine = fam.with({std::to_string(t)});
            for (int i = 0; i < per_thread; ++i) {
                mine.inc();
                shared.inc();
                hist.observe(i % 2000);
                gauge.add(1);
                gauge.sub(1);
                // A new lookup now and then races with other threads' lookups and renders.
                if (i % 50'000 == 0)
                    fam.with({std::to_string(t)}).inc(0);
            }
        });
    }
    for (auto& w : workers)
        w.join();
    done = true;
    scraper.join();
    EXPECT_DOUBLE_EQ(shared.value(), threads * per_thread);
    for (int t = 0; t < threads; ++t)
        EXPECT_DOUBLE_EQ(fam.with({std::to_string(t)}).value(), per_thread);
    EXPECT_EQ(hist.count(), static_cast<std::uint64_t>(threads * per_thread));
    // Each thread observed 0..1999 exactly 100 times: sum is exact in doubles at this size.
    EXPECT_DOUBLE_EQ(hist.sum(), threads * 100.0 * (1999.0 * 2000.0 / 2));
    EXPECT_DOUBLE_EQ(gauge.value(), 0);
    std::string text = reg.render();
    expect_well_formed(text);
    EXPECT_NE(text.find("penne_test_h_bucket{le=\"10\"} " + std::to_string(threads * 100 * 11)),
              std::string::npos)
        << text;
}

TEST(PipelineMetrics, DeclaresEveryFamilyOnceAndFeedsBundles) {
    auto now = std::chrono::system_clock::time_point(1'700'000'000s);
    metrics_registry reg(metrics_options{.clock = [&] { return now; }});
    penne::pipeline_metrics pm(reg);
    pm.set_status(penne::pipeline_status::running);
    auto cm = pm.for_collection("shop", "orders");
    auto sm = pm.for_scope("shop");
    penne::operation_counts ops{};
    ops[static_cast<std::size_t>(penne::metric_operation::insert)] = 2;
    ops[static_cast<std::size_t>(penne::metric_operation::delete_)] = 1;
    cm.received(ops, 3000, 2400);
    cm.received(penne::to_metric_operation("dropIndexes"), 100, 80);
    cm.sealed(penne::seal_reason::count, 4, 2480);
    cm.durable(ops, 900, 2s, 3s);
    sm.uploaded(250ms, 900);
    sm.upload_retry(make_error_code(penne::errc::timeout));
    sm.lag.set(now - 3s);
    sm.checkpoint_saved(now - 1s);
    sm.lease_acquired(true);
    pm.state_store_op("checkpoint", 2ms, {});
    pm.buffered_bytes.set(4096);

    std::string text = reg.render();
    expect_well_formed(text);
    for (const char* line : {
             "penne_events_received_total{scope=\"shop\",collection=\"orders\",operation="
             "\"insert\"} 2\n",
             "penne_events_received_total{scope=\"shop\",collection=\"orders\",operation="
             "\"other\"} 1\n",
             "penne_events_written_total{scope=\"shop\",collection=\"orders\",operation="
             "\"delete\"} 1\n",
             "penne_bytes_received_total{scope=\"shop\",collection=\"orders\"} 3100\n",
             "penne_bytes_encoded_total{scope=\"shop\",collection=\"orders\"} 2480\n",
             "penne_bytes_written_total{scope=\"shop\",collection=\"orders\"} 900\n",
             "penne_batches_sealed_total{scope=\"shop\",collection=\"orders\",reason=\"count\"} "
             "1\n",
             "penne_batch_events_count{scope=\"shop\",collection=\"orders\"} 1\n",
             "penne_upload_duration_seconds_bucket{scope=\"shop\",le=\"0.25\"} 1\n",
             "penne_upload_retries_total{scope=\"shop\",reason=\"timeout\"} 1\n",
             "penne_lag_seconds{scope=\"shop\"} 3\n",
             "penne_checkpoint_age_seconds{scope=\"shop\"} 1\n",
             "penne_lease_held{scope=\"shop\"} 1\n",
             "penne_lease_takeovers_total{scope=\"shop\"} 1\n",
             "penne_state_store_duration_seconds_count{operation=\"checkpoint\"} 1\n",
             "penne_buffered_bytes 4096\n",
             "penne_pipeline_status 1\n",
         })
        EXPECT_NE(text.find(line), std::string::npos) << line << "\n---\n" << text;
    EXPECT_EQ(text.find("rigatoni_"), std::string::npos);
}

TEST(PipelineMetrics, RigatoniCompatibilityNames) {
    metrics_registry reg;
    penne::pipeline_metrics pm(reg, {.rigatoni_compat = true});
    pm.set_status(penne::pipeline_status::failed);
    pm.set_active_collections(1);
    auto cm = pm.for_collection("shop", "orders");
    auto sm = pm.for_scope("shop");
    penne::operation_counts ops{};
    ops[0] = 5;
    cm.received(ops, 100, 80);
    cm.sealed(penne::seal_reason::age, 5, 80);
    cm.durable(ops, 60, 1s, 2s);
    sm.uploaded(100ms, 60);
    sm.upload_error(make_error_code(penne::errc::permanent_rejection));
    sm.lease_acquired(false);
    sm.lease_released();

    std::string text = reg.render();
    expect_well_formed(text);
    for (const char* line : {
             "rigatoni_events_processed_total{collection=\"orders\",operation=\"insert\"} 5\n",
             "rigatoni_batch_size_count{collection=\"orders\"} 1\n",
             "rigatoni_batch_queue_size{collection=\"orders\"} 0\n",
             "rigatoni_batch_duration_seconds_count{collection=\"orders\"} 1\n",
             "rigatoni_change_stream_lag_seconds_count{collection=\"orders\"} 1\n",
             "rigatoni_destination_write_duration_seconds_count{destination_type=\"s3\"} 1\n",
             "rigatoni_destination_write_bytes_sum{destination_type=\"s3\"} 60\n",
             "rigatoni_batches_written_total{destination_type=\"s3\"} 1\n",
             "rigatoni_destination_write_errors_total{destination_type=\"s3\",error_type="
             "\"permanent_rejection\"} 1\n",
             "rigatoni_pipeline_status 2\n",
             "rigatoni_active_collections 1\n",
             "# TYPE rigatoni_locks_held_total untyped\nrigatoni_locks_held_total 0\n",
             "rigatoni_lock_acquisitions_total 1\n",
             "rigatoni_locks_released_total 1\n",
         })
        EXPECT_NE(text.find(line), std::string::npos) << line << "\n---\n" << text;
}

TEST(PipelineMetrics, ReasonLabels) {
    EXPECT_EQ(penne::metric_reason({}), "none");
    EXPECT_EQ(penne::metric_reason(make_error_code(penne::errc::lease_lost)), "lease_lost");
    EXPECT_EQ(penne::metric_reason(make_error_code(boost::system::errc::timed_out)), "timeout");
    EXPECT_EQ(penne::metric_reason(make_error_code(boost::system::errc::connection_refused)),
              "generic");
    EXPECT_EQ(penne::to_metric_operation("replace"), penne::metric_operation::replace);
    EXPECT_EQ(penne::to_metric_operation("rename"), penne::metric_operation::other);
}

}  // namespace
