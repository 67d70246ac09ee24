// Lists the images of an ImageNet-style folder with their labels, in a
// deterministic order, and parses validation labels files. Only names are
// read here (no image is opened), so every problem shows before any work.
//
// Two layouts:
//  - class folders (torchvision's ImageFolder): SRC/<class>/<image>, e.g.
//    train/n01440764/n01440764_10026.JPEG. Classes are the sorted folder
//    names, or a given class list (then every folder must be in it);
//  - flat: SRC/<image> plus a labels file (formats below). Classes are the
//    sorted distinct class names of the file, or a given class list.
// Images are files named *.JPEG, *.jpg or *.jpeg (any case), sorted by file
// name (byte order) within a class; labels index the class list. Hidden
// entries (".x", e.g. macOS "._x.JPEG" resource forks), other files and
// nested folders are not converted but listed in `ignored`.
//
// Labels files (the format is recognised from the first line):
//  (a) one "FILENAME CLASS" per line, separated by whitespace or a comma.
//      FILENAME is the image's file name with or without its extension (a
//      path is reduced to its file name). CLASS is a class name (e.g. the
//      synset n01440764), or, with a given class list, a 0-based index into
//      it when no class has that name. Blank lines are skipped.
//  (b) Kaggle's LOC_val_solution.csv: the header "ImageId,PredictionString",
//      then rows "ILSVRC2012_val_00008726,n02119789 255 142 454 329 ...":
//      the class is the first token of PredictionString; ImageId has no
//      extension.
// Each file must be labelled exactly once, and each entry must name an image
// in the folder.
//
// Every problem is an rn::UserError naming the path (and line) and what to fix.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace rn::data {

struct LabelledImage {
  std::string path;
  int32_t label = 0;
};

struct ImageList {
  std::vector<std::string> class_names;  // label k is class_names[k]
  std::vector<LabelledImage> images;     // in conversion order
  std::vector<std::string> ignored;      // paths not converted (see above), sorted
};

// A fixed class list (e.g. the train set's), and where it came from for messages.
struct ClassList {
  std::vector<std::string> names;
  std::string source;  // e.g. "the dataset data/imagenet/train (--classes)"
};

// ".JPEG", ".jpg", ".jpeg" in any case, and not hidden.
bool is_image_file_name(const std::string& file_name);

ImageList scan_class_folders(const std::string& src, const std::optional<ClassList>& classes = std::nullopt);

struct LabelEntry {
  std::string image;  // file name, with or without extension
  std::string cls;    // class name or index, as written
  int line = 0;       // 1-based, for messages
};

// Parses a labels file's text (formats (a), (b) above); `where` names it in messages.
std::vector<LabelEntry> parse_labels(std::istream& in, const std::string& where);

ImageList scan_flat_folder(const std::string& src, const std::string& labels_file,
                           const std::optional<ClassList>& classes = std::nullopt);

}  // namespace rn::data
