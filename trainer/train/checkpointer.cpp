#include "trainer/train/checkpointer.h"

#include <filesystem>

#include "comm/communicator.h"
#include "trainer/checkpoint/checkpoint_dir.h"
#include "trainer/checkpoint/checkpoint_writer.h"
#include "trainer/core/error.h"
#include "trainer/train/data_parallel.h"

namespace rn {

Checkpointer::Checkpointer(const CheckpointConfig& cfg, const std::string& dir, TrainState run, ResNet& model,
                           Backend& be, const Tensor& velocity, comm::Communicator* world, DataParallel* dp)
    : cfg_(cfg),
      dir_(dir),
      run_(std::move(run)),
      model_(model),
      be_(be),
      velocity_(velocity),
      world_(world),
      dp_(dp),
      last_time_(std::chrono::steady_clock::now()) {}

bool Checkpointer::due_by_time() const {
  if (cfg_.every_minutes <= 0) return false;
  const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_time_).count() / 60;
  return minutes >= cfg_.every_minutes;
}

std::string Checkpointer::save(int64_t step, data::DataCursor cursor, double epoch_position, double lr,
                               const std::function<void(int, int)>& progress) {
  const int rank = world_ ? world_->rank() : 0, size = world_ ? world_->size() : 1;
  if (dp_) dp_->average_buffers();  // one set of BN statistics, as evaluation uses
  // Every rank's cursor, for the record and as a check that they agree.
  std::vector<int64_t> cursors(size_t(2 * size), -1);
  cursors[size_t(2 * rank)] = cursor.epoch;
  cursors[size_t(2 * rank + 1)] = cursor.sample;
  if (world_ && size > 1) world_->allreduce_max(cursors.data(), 2 * size, "checkpoint cursors");
  TrainState st = run_;
  st.step = step;
  st.cursor = cursor;
  st.epoch_position = epoch_position;
  st.lr = lr;
  st.rank_cursors.clear();
  for (int r = 0; r < size; ++r) {
    st.rank_cursors.push_back({cursors[size_t(2 * r)], cursors[size_t(2 * r + 1)]});
    if (!(st.rank_cursors.back() == cursor))
      throw InternalError("data cursors differ between ranks at a checkpoint (rank " + std::to_string(r) + ")");
  }
  const std::string path = (std::filesystem::path(dir_) / checkpoint_file_name(step)).string();
  std::string error;
  if (rank == 0) {
    try {
      save_checkpoint(path, model_, be_, &velocity_, st, progress);
      after_checkpoint_saved(dir_, path, cfg_.keep);
    } catch (const UserError& e) {
      error = e.what();
    }
  }
  int64_t failed = error.empty() ? 0 : 1;
  if (world_ && size > 1) world_->allreduce_max(&failed, 1, "checkpoint written");
  if (!error.empty()) throw AgreedError(error);
  if (failed) throw AgreedError("rank 0 could not write checkpoint " + path + " (its message says why); stopping");
  last_time_ = std::chrono::steady_clock::now();
  return path;
}

}  // namespace rn
