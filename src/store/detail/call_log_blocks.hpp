#pragma once
/// Private: the call-log repo. A gateway under load appends tens of thousands of call logs a
/// second; one database row per call cost the machine about a fifteenth of the gateway's
/// throughput (three B-tree inserts per call: the table and two indexes). So call logs are
/// stored in blocks: one row of `call_log_blocks` holds the calls of one service and one user
/// from one appended batch, as text (`encode_call_log` below), with the block's id range and
/// time range in columns for the lookups. A call's id is the block's `first_id` plus its place
/// in the block; ids come from `call_log_ids`, one UPDATE per batch, so they grow in append
/// order across blocks and never come back.
///
/// Listing reads blocks newest first by `(service, first_id)` or `(user_id, first_id)` and
/// filters their calls; retention deletes whole blocks and cuts the one that holds the cut
/// (`remove_before`). Calls written before the blocks existed stay in the `call_logs` table,
/// with ids below every block's, and are read after the blocks.

#include "store/detail/sql_store.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace openstation::store::detail {

/// Appends one call's line to a block's text: its time in milliseconds (after the first call, as
/// the difference from the previous call's), user, key, instance, status, duration, tokens, TTFT
/// (empty: none), tokens per second (a hexadecimal float, "1.ep+6"; blocks written before
/// session 13 hold a decimal, which reads too) and error, tab-separated, ending in a newline.
/// After the first call, a field equal to the previous call's is written as "=". Strings escape
/// `\`, tab, newline, carriage return and NUL (`\\`, `\t`, `\n`, `\r`, `\0`) and a leading "="
/// (`\=`). The service and the id are the block's.
void encode_call_log(std::string& out, const CallLog& log, std::int64_t time_ms,
                     const CallLog* previous, std::int64_t previous_ms);

/// The calls of a block's text, oldest first, with ids from `first_id` and the block's service.
/// False when the text is not one encode_call_log wrote.
bool decode_call_logs(std::string_view text, std::int64_t first_id, std::string_view service,
                      std::vector<CallLog>& out);

class SqlCallLogRepo final : public LogRepo<CallLog, CallLogFilter> {
 public:
  SqlCallLogRepo(Source& source, Shared& shared)
      : shared_(shared), rows_(source, shared), row_table_(source, shared) {}

  core::Result<CallLog> append(CallLog entry) override;
  core::Result<void> append_all(std::span<const CallLog> entries) override;
  core::Result<Page<CallLog>> list(const CallLogFilter& filter, const PageRequest& page) override;
  core::Result<std::size_t> remove_before(TimePoint before, std::size_t at_most) override;

 private:
  /// Appends in one transaction; the first call's id goes to `first_id`.
  core::Result<void> append_blocks(std::span<const CallLog> entries, std::int64_t& first_id);

  Shared& shared_;
  SqlLogRepo<CallLog, CallLogFilter> rows_;  ///< the call_logs table: calls from before blocks
  Table<CallLog> row_table_;                 ///< its connection source
};

}  // namespace openstation::store::detail
