#include "gateway/metrics.hpp"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/monitoring/metrics_text.hpp"

namespace modelgate::gateway {
namespace {

using namespace std::chrono_literals;
using testing::find_sample;
using testing::parse_metrics_text;
using testing::Sample;
using State = routing::InstanceState;

std::vector<Sample> scrape(const Metrics& metrics) {
  return parse_metrics_text(metrics.serialize());
}

TEST(Metrics, ConfiguredDeploymentSeriesStartAtZero) {
  Metrics metrics({"demo"});
  std::vector<Sample> samples = scrape(metrics);

  for (const char* result : {"success", "failed", "timeout"}) {
    EXPECT_EQ(find_sample(samples, "modelgate_cold_starts_total",
                          {{"deployment", "demo"}, {"result", result}}),
              0.0)
        << "result=" << result;
  }
  for (const char* state : {"starting", "running", "stopping", "error"}) {
    EXPECT_EQ(find_sample(samples, "modelgate_instances", {{"deployment", "demo"}, {"state", state}}),
              0.0)
        << "state=" << state;
  }
  for (const char* kind : {"connect", "reset", "timeout", "backend_5xx"}) {
    EXPECT_EQ(find_sample(samples, "modelgate_upstream_errors_total",
                          {{"deployment", "demo"}, {"kind", kind}}),
              0.0)
        << "kind=" << kind;
  }
  EXPECT_EQ(find_sample(samples, "modelgate_held_requests", {{"deployment", "demo"}}), 0.0);
  EXPECT_EQ(find_sample(samples, "modelgate_hold_duration_seconds_count", {{"deployment", "demo"}}),
            0.0);
  EXPECT_EQ(find_sample(samples, "modelgate_idle_stops_total", {{"deployment", "demo"}}), 0.0);
  EXPECT_EQ(find_sample(samples, "modelgate_stream_chunks_total", {{"deployment", "demo"}}), 0.0);
}

TEST(Metrics, ModelEndpointCodesStartAtZero) {
  Metrics metrics({"demo"});
  std::vector<Sample> samples = scrape(metrics);

  for (const char* endpoint : {"chat_completions", "completions", "embeddings"}) {
    for (const char* code : {"200", "502", "503", "504"}) {
      EXPECT_EQ(find_sample(samples, "modelgate_requests_total",
                            {{"deployment", "demo"}, {"endpoint", endpoint}, {"code", code}}),
                0.0)
          << endpoint << " " << code;
    }
  }
  EXPECT_EQ(find_sample(samples, "modelgate_requests_total", {{"deployment", ""}}), std::nullopt)
      << "requests without a deployment get series only when they happen";
}

TEST(Metrics, GatewayWideSeriesExist) {
  Metrics metrics;
  std::vector<Sample> samples = scrape(metrics);

  EXPECT_EQ(find_sample(samples, "modelgate_client_connections"), 0.0);
  EXPECT_EQ(find_sample(samples, "modelgate_upstream_idle_connections"), 0.0);
  EXPECT_EQ(find_sample(samples, "modelgate_config_reloads_total", {{"result", "success"}}), 0.0);
  EXPECT_EQ(find_sample(samples, "modelgate_config_reloads_total", {{"result", "failure"}}), 0.0);
  EXPECT_EQ(find_sample(samples, "modelgate_build_info"), 1.0);
}

TEST(Metrics, RequestCountedByEndpointAndCode) {
  Metrics metrics({"demo"});
  metrics.record_request("demo", "chat_completions", 200, 120ms, 80ms);
  metrics.record_request("demo", "chat_completions", 200, 30ms, 10ms);
  metrics.record_request("demo", "embeddings", 502, 5ms);
  metrics.record_request("", "chat_completions", 404, 1ms);
  std::vector<Sample> samples = scrape(metrics);

  EXPECT_EQ(find_sample(samples, "modelgate_requests_total",
                        {{"deployment", "demo"}, {"endpoint", "chat_completions"}, {"code", "200"}}),
            2.0);
  EXPECT_EQ(find_sample(samples, "modelgate_requests_total",
                        {{"deployment", "demo"}, {"endpoint", "embeddings"}, {"code", "502"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_requests_total",
                        {{"deployment", ""}, {"endpoint", "chat_completions"}, {"code", "404"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_request_duration_seconds_count",
                        {{"deployment", "demo"}, {"endpoint", "chat_completions"}}),
            2.0);
  EXPECT_NEAR(*find_sample(samples, "modelgate_request_duration_seconds_sum",
                           {{"deployment", "demo"}, {"endpoint", "chat_completions"}}),
              0.150, 1e-9);
  EXPECT_EQ(find_sample(samples, "modelgate_request_duration_seconds_bucket",
                        {{"deployment", "demo"}, {"endpoint", "chat_completions"}, {"le", "0.05"}}),
            1.0);
}

TEST(Metrics, FirstByteRecordedOnlyWhenGiven) {
  Metrics metrics({"demo"});
  metrics.record_request("demo", "chat_completions", 200, 120ms, 80ms);
  metrics.record_request("demo", "chat_completions", 404, 1ms);
  std::vector<Sample> samples = scrape(metrics);

  EXPECT_EQ(find_sample(samples, "modelgate_time_to_first_byte_seconds_count",
                        {{"deployment", "demo"}, {"endpoint", "chat_completions"}}),
            1.0);
  EXPECT_NEAR(*find_sample(samples, "modelgate_time_to_first_byte_seconds_sum",
                           {{"deployment", "demo"}, {"endpoint", "chat_completions"}}),
              0.080, 1e-9);
}

TEST(Metrics, UnusualEndpointAndCodeStillCounted) {
  Metrics metrics({"demo"});
  metrics.record_request("demo", "batch", 200, 1ms);
  metrics.record_request("demo", "chat_completions", 999, 1ms);
  std::vector<Sample> samples = scrape(metrics);

  EXPECT_EQ(find_sample(samples, "modelgate_requests_total",
                        {{"deployment", "demo"}, {"endpoint", "batch"}, {"code", "200"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_requests_total",
                        {{"deployment", "demo"}, {"endpoint", "chat_completions"}, {"code", "999"}}),
            1.0);
}

TEST(Metrics, UnconfiguredDeploymentGetsItsOwnSeries) {
  Metrics metrics({"demo"});
  metrics.record_request("other", "completions", 200, 1ms);
  metrics.on_cold_start("other", launcher::ColdStartResult::success, 1.5);
  std::vector<Sample> samples = scrape(metrics);

  EXPECT_EQ(find_sample(samples, "modelgate_requests_total",
                        {{"deployment", "other"}, {"endpoint", "completions"}, {"code", "200"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_cold_starts_total",
                        {{"deployment", "other"}, {"result", "success"}}),
            1.0);
}

TEST(Metrics, DroppedCountedByReason) {
  Metrics metrics({"demo"});
  metrics.record_dropped("demo", "client_gone_while_held");
  metrics.record_dropped("demo", "client_gone_while_held");
  metrics.record_dropped("demo", "something_new");
  std::vector<Sample> samples = scrape(metrics);

  EXPECT_EQ(find_sample(samples, "modelgate_requests_dropped_total",
                        {{"deployment", "demo"}, {"reason", "client_gone_while_held"}}),
            2.0);
  EXPECT_EQ(find_sample(samples, "modelgate_requests_dropped_total",
                        {{"deployment", "demo"}, {"reason", "something_new"}}),
            1.0);
}

TEST(Metrics, ColdStartCountedWithDuration) {
  Metrics metrics({"demo"});
  metrics.on_cold_start("demo", launcher::ColdStartResult::success, 2.0);
  metrics.on_cold_start("demo", launcher::ColdStartResult::timeout, 600.0);
  std::vector<Sample> samples = scrape(metrics);

  EXPECT_EQ(find_sample(samples, "modelgate_cold_starts_total",
                        {{"deployment", "demo"}, {"result", "success"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_cold_starts_total",
                        {{"deployment", "demo"}, {"result", "timeout"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_cold_start_duration_seconds_bucket",
                        {{"deployment", "demo"}, {"result", "success"}, {"le", "2.5"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_cold_start_duration_seconds_sum",
                        {{"deployment", "demo"}, {"result", "timeout"}}),
            600.0);
}

TEST(Metrics, InstanceStateChangesMoveGauges) {
  Metrics metrics({"demo"});
  metrics.on_instance_state("demo", std::nullopt, State::starting);
  metrics.on_instance_state("demo", std::nullopt, State::starting);
  metrics.on_instance_state("demo", State::starting, State::running);
  metrics.on_instance_state("demo", State::starting, State::error);
  std::vector<Sample> samples = scrape(metrics);

  auto instances = [&](const char* state) {
    return find_sample(samples, "modelgate_instances", {{"deployment", "demo"}, {"state", state}});
  };
  EXPECT_EQ(instances("starting"), 0.0);
  EXPECT_EQ(instances("running"), 1.0);
  EXPECT_EQ(instances("error"), 1.0);

  metrics.on_instance_state("demo", State::running, State::stopping);
  metrics.on_instance_state("demo", State::stopping, std::nullopt);
  metrics.on_instance_state("demo", State::error, std::nullopt);
  samples = scrape(metrics);
  EXPECT_EQ(instances("running"), 0.0);
  EXPECT_EQ(instances("stopping"), 0.0);
  EXPECT_EQ(instances("error"), 0.0);
}

TEST(Metrics, HeldRequestsGaugeAndWait) {
  Metrics metrics({"demo"});
  metrics.on_held_requests("demo", 7);
  metrics.record_held("demo", 250ms);
  std::vector<Sample> samples = scrape(metrics);

  EXPECT_EQ(find_sample(samples, "modelgate_held_requests", {{"deployment", "demo"}}), 7.0);
  EXPECT_EQ(find_sample(samples, "modelgate_hold_duration_seconds_count", {{"deployment", "demo"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_hold_duration_seconds_bucket",
                        {{"deployment", "demo"}, {"le", "0.25"}}),
            1.0);

  metrics.on_held_requests("demo", 0);
  samples = scrape(metrics);
  EXPECT_EQ(find_sample(samples, "modelgate_held_requests", {{"deployment", "demo"}}), 0.0);
}

TEST(Metrics, UpstreamErrorsIdleStopsAndChunks) {
  Metrics metrics({"demo"});
  metrics.record_upstream_error("demo", UpstreamErrorKind::backend_5xx);
  metrics.record_upstream_error("demo", UpstreamErrorKind::connect);
  metrics.record_upstream_error("demo", UpstreamErrorKind::connect);
  metrics.on_idle_stop("demo");
  metrics.record_stream_chunk("demo");
  metrics.record_stream_chunk("demo");
  metrics.record_stream_chunk("demo");
  std::vector<Sample> samples = scrape(metrics);

  EXPECT_EQ(find_sample(samples, "modelgate_upstream_errors_total",
                        {{"deployment", "demo"}, {"kind", "backend_5xx"}}),
            1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_upstream_errors_total",
                        {{"deployment", "demo"}, {"kind", "connect"}}),
            2.0);
  EXPECT_EQ(find_sample(samples, "modelgate_idle_stops_total", {{"deployment", "demo"}}), 1.0);
  EXPECT_EQ(find_sample(samples, "modelgate_stream_chunks_total", {{"deployment", "demo"}}), 3.0);
}

TEST(Metrics, UpstreamIdleSourceReadAtScrape) {
  Metrics metrics;
  std::size_t idle = 3;
  metrics.set_upstream_idle_source([&idle] { return idle; });
  EXPECT_EQ(find_sample(scrape(metrics), "modelgate_upstream_idle_connections"), 3.0);

  idle = 5;
  EXPECT_EQ(find_sample(scrape(metrics), "modelgate_upstream_idle_connections"), 5.0);

  metrics.set_upstream_idle_source({});
  EXPECT_EQ(find_sample(scrape(metrics), "modelgate_upstream_idle_connections"), 5.0)
      << "without a source the gauge keeps its last value";
}

TEST(Metrics, ConcurrentRecordingLosesNoRequest) {
  Metrics metrics({"demo"});
  constexpr int kThreads = 4;
  constexpr int kRequestsPerThread = 20000;

  std::vector<std::thread> threads;
  for (int thread = 0; thread < kThreads; ++thread) {
    threads.emplace_back([&metrics, thread] {
      for (int index = 0; index < kRequestsPerThread; ++index) {
        // Different codes per thread fill cache slots concurrently.
        metrics.record_request("demo", "chat_completions", 200 + (index % 3) * 100 + thread, 1ms,
                               1ms);
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }

  std::vector<Sample> samples = scrape(metrics);
  double total = 0;
  for (const Sample& sample : samples) {
    if (sample.name == "modelgate_requests_total") {
      total += sample.value;
    }
  }
  EXPECT_EQ(total, kThreads * kRequestsPerThread);
  EXPECT_EQ(find_sample(samples, "modelgate_request_duration_seconds_count",
                        {{"deployment", "demo"}, {"endpoint", "chat_completions"}}),
            kThreads * kRequestsPerThread);
}

}  // namespace
}  // namespace modelgate::gateway
