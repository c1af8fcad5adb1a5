#include "gateway/metrics.hpp"

#include "core/json.hpp"

#include <sstream>

namespace openstation::gateway {

void Histogram::observe(double v) {
  for (std::size_t i = 0; i < kBounds.size(); ++i)
    if (v <= kBounds[i]) ++buckets[i];
  ++count;
  sum += v;
}

void Histogram::add(const Histogram& other) {
  for (std::size_t i = 0; i < buckets.size(); ++i) buckets[i] += other.buckets[i];
  count += other.count;
  sum += other.sum;
}

void Metrics::PerModel::add(const PerModel& other) {
  for (const auto& [status, n] : other.by_status) by_status[status] += n;
  duration.add(other.duration);
  ttft.add(other.ttft);
  prompt_tokens += other.prompt_tokens;
  completion_tokens += other.completion_tokens;
}

Metrics::Metrics() {
  shards_.emplace_back();
}

Metrics::Shard& Metrics::add_shard() {
  std::lock_guard lock(shards_mutex_);
  return shards_.emplace_back();
}

void Metrics::record(Shard& shard, const RequestSample& s) {
  std::lock_guard lock(shard.mutex_);
  if (shard.last_ == nullptr || shard.last_model_ != s.model) {
    auto it = shard.models_.find(s.model);
    if (it == shard.models_.end()) {
      it = shard.models_.emplace(std::string(s.model), PerModel{}).first;
    }
    shard.last_model_ = it->first;
    shard.last_ = &it->second;
    shard.last_status_count_ = nullptr;
  }
  auto& m = *shard.last_;
  if (shard.last_status_count_ == nullptr || shard.last_status_ != s.status) {
    shard.last_status_ = s.status;
    shard.last_status_count_ = &m.by_status[s.status];
  }
  ++*shard.last_status_count_;
  m.duration.observe(s.duration_s);
  if (s.ttft_s >= 0) m.ttft.observe(s.ttft_s);
  m.prompt_tokens += static_cast<std::uint64_t>(std::max<std::int64_t>(0, s.prompt_tokens));
  m.completion_tokens += static_cast<std::uint64_t>(std::max<std::int64_t>(0, s.completion_tokens));
}

std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

void histogram(std::ostringstream& o, std::string_view name, const std::string& model,
               const Histogram& h) {
  const auto label = "model=\"" + escape_label(model) + "\"";
  for (std::size_t i = 0; i < Histogram::kBounds.size(); ++i) {
    o << name << "_bucket{" << label << ",le=\"" << core::json::format_double(Histogram::kBounds[i])
      << "\"} " << h.buckets[i] << '\n';
  }
  o << name << "_bucket{" << label << ",le=\"+Inf\"} " << h.count << '\n';
  o << name << "_sum{" << label << "} " << core::json::format_double(h.sum) << '\n';
  o << name << "_count{" << label << "} " << h.count << '\n';
}

}  // namespace

std::string Metrics::render(const LoadRegistry& loads, std::uint64_t call_logs_dropped) const {
  std::map<std::string, PerModel, std::less<>> models;
  {
    std::lock_guard list(shards_mutex_);
    for (const auto& shard : shards_) {
      std::lock_guard lock(shard.mutex_);
      for (const auto& [model, m] : shard.models_) models[model].add(m);
    }
  }
  std::ostringstream o;
  o << "# HELP openstation_gateway_requests_total Requests answered, by model and HTTP status.\n"
       "# TYPE openstation_gateway_requests_total counter\n";
  for (const auto& [model, m] : models)
    for (const auto& [status, n] : m.by_status)
      o << "openstation_gateway_requests_total{model=\"" << escape_label(model) << "\",code=\""
        << status << "\"} " << n << '\n';
  o << "# HELP openstation_gateway_errors_total Requests answered with a status of 400 or more.\n"
       "# TYPE openstation_gateway_errors_total counter\n";
  for (const auto& [model, m] : models)
    for (const auto& [status, n] : m.by_status)
      if (status >= 400)
        o << "openstation_gateway_errors_total{model=\"" << escape_label(model) << "\",code=\""
          << status << "\"} " << n << '\n';
  o << "# HELP openstation_gateway_request_duration_seconds Time from request to last byte.\n"
       "# TYPE openstation_gateway_request_duration_seconds histogram\n";
  for (const auto& [model, m] : models)
    histogram(o, "openstation_gateway_request_duration_seconds", model, m.duration);
  o << "# HELP openstation_gateway_ttft_seconds Time to the first streamed token.\n"
       "# TYPE openstation_gateway_ttft_seconds histogram\n";
  for (const auto& [model, m] : models)
    if (m.ttft.count > 0) histogram(o, "openstation_gateway_ttft_seconds", model, m.ttft);
  o << "# HELP openstation_gateway_tokens_total Tokens metered, by model and kind.\n"
       "# TYPE openstation_gateway_tokens_total counter\n";
  for (const auto& [model, m] : models) {
    o << "openstation_gateway_tokens_total{model=\"" << escape_label(model)
      << "\",kind=\"prompt\"} " << m.prompt_tokens << '\n';
    o << "openstation_gateway_tokens_total{model=\"" << escape_label(model)
      << "\",kind=\"completion\"} " << m.completion_tokens << '\n';
  }
  o << "# HELP openstation_gateway_in_flight Requests in flight, by instance.\n"
       "# TYPE openstation_gateway_in_flight gauge\n";
  for (const auto& [id, load] : loads.all())
    o << "openstation_gateway_in_flight{instance=\"" << escape_label(id) << "\"} "
      << load->outstanding() << '\n';
  o << "# HELP openstation_gateway_call_logs_dropped_total Call-log records dropped at the "
       "queue's bounds while the store (or server) was down or hanging.\n"
       "# TYPE openstation_gateway_call_logs_dropped_total counter\n"
       "openstation_gateway_call_logs_dropped_total "
    << call_logs_dropped << '\n';
  return o.str();
}

}  // namespace openstation::gateway
