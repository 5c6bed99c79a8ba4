// Factories of the compiled-in engines (not installed); open_engine() picks one by file name.
#pragma once

#include <memory>
#include <string>

#include "kapao/engine.hpp"

namespace kapao::detail {

Status open_onnxruntime(const std::string& path, const EngineOptions& options, std::unique_ptr<Engine>& out);
Status open_tensorrt(const std::string& path, const EngineOptions& options, std::unique_ptr<Engine>& out);

}  // namespace kapao::detail
