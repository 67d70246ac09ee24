// Class predictions from logits: softmax, the k most probable classes, the
// names to print for them, and the text and JSON reports of resnet-infer.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "trainer/checkpoint/checkpoint_reader.h"

namespace rn {

struct ClassScore {
  int64_t index = 0;
  double prob = 0;  // softmax probability
};

// The k most probable of `classes` logits (k clamped to classes), most
// probable first; ties go to the lower index.
std::vector<ClassScore> top_k(const float* logits, int64_t classes, int k);

// Class names for ck's labels: the manifest of dataset `classes_dir` when
// given, else the checkpoint's /classes, else empty. Throws UserError when
// the dataset is unreadable or has another number of classes.
std::vector<std::string> class_names_for(const CheckpointInfo& ck, const std::string& classes_dir);

// names[index], or "class N" when there are no names.
std::string class_label(const std::vector<std::string>& names, int64_t index);

// "IMAGE\n  1. 0.8123  tench\n  2. ...\n"
std::string format_text(const std::string& image, const std::vector<ClassScore>& top,
                        const std::vector<std::string>& names);
// {"image": IMAGE, "top": [{"rank": 1, "class": 0, "name": "tench", "prob": 0.81}, ...]}
nlohmann::json to_json(const std::string& image, const std::vector<ClassScore>& top,
                       const std::vector<std::string>& names);

}  // namespace rn
