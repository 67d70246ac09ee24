#include "trainer/train/metrics_writer.h"

#include "trainer/core/error.h"

namespace rn {

MetricsWriter::MetricsWriter(const std::string& path) : out_(path, std::ios::app), path_(path) {
  if (!out_) throw UserError("cannot write " + path + ": check that train.output_dir is writable");
}

void MetricsWriter::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  if (!out_) throw UserError("writing " + path_ + " failed (disk full?)");
}

}  // namespace rn
