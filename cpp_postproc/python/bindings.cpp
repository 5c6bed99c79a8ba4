// kapao_edge._postproc: the C++ post-processor for NumPy arrays. The only file that knows Python.
//
// Predictions are read in place (no copy, no conversion): they must already be C-contiguous,
// aligned, native-endian float32 or float16 (B, N, No). The GIL is released while computing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kapao/postproc.hpp"

namespace py = pybind11;

namespace {

enum class InputType { Float32, Float16 };

InputType check_predictions(const py::array& predictions) {
    const py::dtype dtype = predictions.dtype();
    const char kind = dtype.kind();
    const auto itemsize = dtype.itemsize();
    const char order = dtype.byteorder();
    InputType type;
    if (kind == 'f' && itemsize == 4) {
        type = InputType::Float32;
    } else if (kind == 'f' && itemsize == 2) {
        type = InputType::Float16;
    } else {
        throw py::type_error("predictions must be float32 or float16, got dtype " +
                             py::str(dtype).cast<std::string>() +
                             " (convert with predictions.astype(np.float32))");
    }
    if (order == '>') {
        throw py::type_error("predictions must be in native byte order, got a big-endian array");
    }
    if (predictions.ndim() != 3) {
        throw py::value_error("predictions must have shape (B, N, No), got " +
                              std::to_string(predictions.ndim()) + " dimension(s)");
    }
    if (!(predictions.flags() & py::array::c_style)) {
        throw py::value_error(
            "predictions must be C-contiguous (pass np.ascontiguousarray(predictions))");
    }
    if (reinterpret_cast<std::uintptr_t>(predictions.data()) % static_cast<std::uintptr_t>(itemsize) != 0) {
        throw py::value_error("predictions must be aligned to their item size (pass predictions.copy())");
    }
    return type;
}

kapao::Compat parse_compat(const std::string& compat) {
    if (compat == "official") {
        return kapao::Compat::Official;
    }
    if (compat == "default") {
        return kapao::Compat::Default;
    }
    throw py::value_error("compat must be 'official' or 'default', got '" + compat + "'");
}

py::array_t<float> to_numpy(const std::vector<float>& values, std::vector<py::ssize_t> shape) {
    py::array_t<float> array(shape);
    if (!values.empty()) {
        std::copy(values.begin(), values.end(), array.mutable_data());
    }
    return array;
}

py::list postprocess(const py::array& predictions, std::pair<int, int> input_hw,
                     const std::vector<std::pair<int, int>>& original_hws, double conf_thres,
                     double iou_thres, double conf_thres_kp, double iou_thres_kp,
                     double conf_thres_kp_person, double overwrite_tol, int max_det, int max_nms,
                     bool use_kp_dets, const std::string& compat) {
    const InputType type = check_predictions(predictions);
    const auto batch = static_cast<std::size_t>(predictions.shape(0));
    const auto num_rows = static_cast<std::size_t>(predictions.shape(1));
    const auto num_outputs = static_cast<std::size_t>(predictions.shape(2));
    if (original_hws.size() != batch) {
        throw py::value_error("original_hws has " + std::to_string(original_hws.size()) +
                              " sizes for a batch of " + std::to_string(batch) + " images");
    }
    kapao::Config config;
    config.conf_thres = conf_thres;
    config.iou_thres = iou_thres;
    config.conf_thres_kp = conf_thres_kp;
    config.iou_thres_kp = iou_thres_kp;
    config.conf_thres_kp_person = conf_thres_kp_person;
    config.overwrite_tol = overwrite_tol;
    config.max_det = max_det;
    config.max_nms = max_nms;
    config.use_kp_dets = use_kp_dets;
    config.compat = parse_compat(compat);
    if (const kapao::Status status = kapao::validate_config(config); !status.ok()) {
        throw py::value_error(status.message());
    }
    if (kapao::keypoints_from_outputs(num_outputs) == 0) {
        throw py::value_error("a prediction row must have 3K + 6 values (K >= 1 keypoints), got " +
                              std::to_string(num_outputs));
    }

    std::vector<kapao::ImageSize> originals;
    originals.reserve(batch);
    for (const auto& hw : original_hws) {
        originals.push_back({hw.first, hw.second});
    }
    const kapao::ImageSize input{input_hw.first, input_hw.second};

    // One workspace and result set per thread: repeated calls reuse their memory.
    thread_local kapao::Workspace workspace;
    thread_local std::vector<kapao::Poses> results;
    const void* data = predictions.data();
    const auto size = static_cast<std::size_t>(predictions.size());  // B * N * No values
    kapao::Status status;
    {
        py::gil_scoped_release release;
        if (type == InputType::Float32) {
            status = kapao::postprocess_batch(
                kapao::Span<const float>(static_cast<const float*>(data), size), batch, num_rows,
                num_outputs, input, originals, config, workspace, results);
        } else {
            status = kapao::postprocess_batch(
                kapao::Span<const std::uint16_t>(static_cast<const std::uint16_t*>(data), size), batch,
                num_rows, num_outputs, input, originals, config, workspace, results);
        }
    }
    if (!status.ok()) {
        throw py::value_error(status.message());
    }

    py::list out;
    for (const kapao::Poses& poses : results) {
        const auto count = static_cast<py::ssize_t>(poses.num_poses);
        const auto keypoints = static_cast<py::ssize_t>(poses.num_keypoints);
        out.append(py::make_tuple(to_numpy(poses.keypoints, {count, keypoints, 3}),
                                  to_numpy(poses.boxes, {count, 4}), to_numpy(poses.scores, {count})));
    }
    return out;
}

py::dict config_dict(const kapao::Config& config) {
    py::dict d;
    d["conf_thres"] = config.conf_thres;
    d["iou_thres"] = config.iou_thres;
    d["conf_thres_kp"] = config.conf_thres_kp;
    d["iou_thres_kp"] = config.iou_thres_kp;
    d["conf_thres_kp_person"] = config.conf_thres_kp_person;
    d["overwrite_tol"] = config.overwrite_tol;
    d["max_det"] = config.max_det;
    d["max_nms"] = config.max_nms;
    d["use_kp_dets"] = config.use_kp_dets;
    d["compat"] = config.compat == kapao::Compat::Official ? "official" : "default";
    return d;
}

}  // namespace

PYBIND11_MODULE(_postproc, m) {
    m.doc() = "KAPAO post-processing in C++: filter, class-aware NMS, scale back, keypoint fusion.";
    const kapao::Config defaults;  // keyword defaults = kapao::Config{} = PostprocessConfig()
    m.def("postprocess", &postprocess, py::arg("predictions"), py::arg("input_hw"),
          py::arg("original_hws"), py::kw_only(), py::arg("conf_thres") = defaults.conf_thres,
          py::arg("iou_thres") = defaults.iou_thres, py::arg("conf_thres_kp") = defaults.conf_thres_kp,
          py::arg("iou_thres_kp") = defaults.iou_thres_kp,
          py::arg("conf_thres_kp_person") = defaults.conf_thres_kp_person,
          py::arg("overwrite_tol") = defaults.overwrite_tol, py::arg("max_det") = defaults.max_det,
          py::arg("max_nms") = defaults.max_nms, py::arg("use_kp_dets") = defaults.use_kp_dets,
          py::arg("compat") = std::string(defaults.compat == kapao::Compat::Official ? "official" : "default"),
          R"doc(Poses for each image of a (B, N, No) float32/float16 C-contiguous prediction batch.

Returns one (keypoints (P, K, 3), boxes (P, 4), scores (P,)) float32 tuple per image.
Raises TypeError for other dtypes and ValueError for bad shapes, layouts or settings.)doc");
    // The C++ presets, field by field as PostprocessConfig names them (compared in a test).
    m.def("default_config", [] { return config_dict(kapao::Config{}); },
          "kapao::Config{} as a dict (PostprocessConfig() in Python).");
    m.def("val_config", [] { return config_dict(kapao::val_config()); },
          "kapao::val_config() as a dict (PostprocessConfig.official_val()).");
    m.def("demo_config", [] { return config_dict(kapao::demo_config()); },
          "kapao::demo_config() as a dict (PostprocessConfig.official_demo()).");
}
