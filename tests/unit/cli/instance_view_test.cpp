// The instance table and progress line: a preparing instance shows its model pull's percentage.

#include "cli/instance_view.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace openstation::cli {
namespace {

boost::json::value instance(const char* state, boost::json::value progress, const char* reason) {
  return boost::json::object{{"id", "inst_1"},
                             {"service", "chat"},
                             {"state", state},
                             {"state_reason", reason},
                             {"nodes", {"gpu-c"}},
                             {"port", 0},
                             {"restarts", 0},
                             {"created_at", ""},
                             {"pending_reasons", boost::json::array{}},
                             {"progress", std::move(progress)}};
}

TEST(InstanceView, APreparingInstanceShowsThePullsPercentage) {
  const char* reason = "pulling model files from the server: 1.2 GiB of 3.4 GiB (35%)";
  const boost::json::array rows{
      instance("preparing",
               boost::json::object{
                   {"bytes_done", 1288490188}, {"bytes_total", 3650722201}, {"percent", 35.2}},
               reason),
      instance("running", nullptr, "")};
  const auto text = instance_table(rows, true).render();
  EXPECT_NE(text.find("preparing 35.2%"), std::string::npos) << text;
  EXPECT_NE(text.find(reason), std::string::npos) << text;
  EXPECT_NE(instance_progress(rows[0]).find("preparing 35.2% (" + std::string(reason) + ")"),
            std::string::npos)
      << instance_progress(rows[0]);
}

}  // namespace
}  // namespace openstation::cli
