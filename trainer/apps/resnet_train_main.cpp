// resnet-train: train a ResNet from a config file plus overrides.
// Exit codes: 0 done, 2 user error (message says what to fix), 1 internal
// error, 128+signal when stopped by SIGINT/SIGTERM after checkpointing.
#include <cstdio>
#include <exception>

#include "trainer/config/config.h"
#include "trainer/core/error.h"
#include "trainer/model/arch.h"
#include "trainer/train/trainer.h"

int main(int argc, char** argv) {
  try {
    const rn::CliRequest req = rn::parse_command_line(argc, argv);
    switch (req.action) {
      case rn::CliAction::kHelp: std::fputs(req.help_text.c_str(), stdout); return 0;
      case rn::CliAction::kVersion: std::printf("resnet-train %s\n", RN_VERSION); return 0;
      case rn::CliAction::kSummary: {
        // `--summary --model.arch=resnet152` describes the ImageNet model:
        // classes and input size default to the architecture's own.
        rn::Config c = req.config;
        rn::ArchSpec arch;
        if (rn::lookup_arch(c.model.arch, &arch)) {
          if (!req.given_keys.count("model.num_classes")) c.model.num_classes = arch.default_classes;
          if (!req.given_keys.count("data.image_size")) c.data.image_size = arch.default_image_size;
        }
        rn::print_summary(c);
        return 0;
      }
      case rn::CliAction::kTrain: break;
    }
    const rn::TrainResult r = rn::run_training(req.config);
    return r.interrupted ? 128 + r.signal : 0;
  } catch (const rn::UserError& e) {
    std::fprintf(stderr, "resnet-train: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "resnet-train: internal error: %s\n", e.what());
    return 1;
  }
}
