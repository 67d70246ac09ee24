// Validation: one pass over this rank's share of a validation stream, with
// the class probabilities of several views of an image (10-crop) averaged
// before scoring, and the totals summed over ranks.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/batch_stream.h"
#include "trainer/backend/backend.h"
#include "trainer/model/resnet.h"

namespace rn::comm {
class Communicator;
}

namespace rn {

struct EvalResult {
  double loss = 0;       // mean cross-entropy of the (view-averaged) probabilities, no label smoothing
  double top1 = 0;       // fractions of the scored images, in [0, 1]
  double top5 = 0;
  int64_t images = 0;    // scored images, all ranks
  int64_t skipped = 0;   // corrupt images skipped, all ranks
};

class Evaluator {
 public:
  Evaluator(Backend& be, int num_classes, int batch_size, int image_size);
  // world: nullptr or the data-parallel ranks, whose shares are summed.
  EvalResult run(ResNet& model, data::BatchStream& val, comm::Communicator* world,
                 std::vector<std::string>* warnings);

 private:
  Backend& be_;
  int classes_, batch_, size_;
  // [batch, 3, S, S] inputs (a smaller last batch zero-padded): the next
  // view or batch is uploaded while the device runs the current one.
  std::unique_ptr<UploadRing> inputs_;
  std::vector<int32_t> labels_;   // [batch]: the current batch's, kept past the next fetch
  std::vector<float> logits_;     // [batch, classes]
  std::vector<double> probs_;     // [batch, classes], summed over views
};

}  // namespace rn
