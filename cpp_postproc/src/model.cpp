// A small JSON reader for the model metadata: objects, arrays, strings, numbers, booleans, null.
// Enough for the metadata written by kapao-edge export; no third-party dependency in the core.
#include "kapao/model.hpp"

#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace kapao {
namespace {

struct Json {
    enum class Type { Null, Bool, Number, String, Array, Object } type = Type::Null;
    bool boolean = false;
    double number = 0.0;
    std::string text;     // String; also the number's source text
    std::vector<Json> items;
    std::vector<std::pair<std::string, Json>> members;

    const Json* find(const std::string& key) const {
        for (const auto& member : members) {
            if (member.first == key) {
                return &member.second;
            }
        }
        return nullptr;
    }
};

class Parser {
public:
    explicit Parser(const std::string& text) : s_(text) {}

    Json document() {
        Json value = parse_value(0);
        skip_space();
        if (pos_ != s_.size()) {
            fail("unexpected text after the JSON value");
        }
        return value;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw std::invalid_argument("model metadata: " + what + " at offset " + std::to_string(pos_));
    }
    void skip_space() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) {
            ++pos_;
        }
    }
    bool consume(const char* word) {
        const std::string w(word);
        if (s_.compare(pos_, w.size(), w) == 0) {
            pos_ += w.size();
            return true;
        }
        return false;
    }
    Json parse_value(int depth) {
        if (depth > 64) {
            fail("nesting too deep");
        }
        skip_space();
        if (pos_ >= s_.size()) {
            fail("unexpected end");
        }
        Json value;
        const char c = s_[pos_];
        if (c == '{') {
            value.type = Json::Type::Object;
            ++pos_;
            skip_space();
            if (pos_ < s_.size() && s_[pos_] == '}') {
                ++pos_;
                return value;
            }
            while (true) {
                skip_space();
                if (pos_ >= s_.size() || s_[pos_] != '"') {
                    fail("expected a key");
                }
                std::string key = parse_string();
                skip_space();
                if (pos_ >= s_.size() || s_[pos_] != ':') {
                    fail("expected ':'");
                }
                ++pos_;
                value.members.emplace_back(std::move(key), parse_value(depth + 1));
                skip_space();
                if (pos_ < s_.size() && s_[pos_] == ',') {
                    ++pos_;
                } else if (pos_ < s_.size() && s_[pos_] == '}') {
                    ++pos_;
                    return value;
                } else {
                    fail("expected ',' or '}'");
                }
            }
        }
        if (c == '[') {
            value.type = Json::Type::Array;
            ++pos_;
            skip_space();
            if (pos_ < s_.size() && s_[pos_] == ']') {
                ++pos_;
                return value;
            }
            while (true) {
                value.items.push_back(parse_value(depth + 1));
                skip_space();
                if (pos_ < s_.size() && s_[pos_] == ',') {
                    ++pos_;
                } else if (pos_ < s_.size() && s_[pos_] == ']') {
                    ++pos_;
                    return value;
                } else {
                    fail("expected ',' or ']'");
                }
            }
        }
        if (c == '"') {
            value.type = Json::Type::String;
            value.text = parse_string();
            return value;
        }
        if (consume("true")) {
            value.type = Json::Type::Bool;
            value.boolean = true;
            value.text = "true";
            return value;
        }
        if (consume("false")) {
            value.type = Json::Type::Bool;
            value.text = "false";
            return value;
        }
        if (consume("null")) {
            return value;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            const std::size_t start = pos_;
            while (pos_ < s_.size() && std::string("+-0123456789.eE").find(s_[pos_]) != std::string::npos) {
                ++pos_;
            }
            value.type = Json::Type::Number;
            value.text = s_.substr(start, pos_ - start);
            char* end = nullptr;
            value.number = std::strtod(value.text.c_str(), &end);
            if (end != value.text.c_str() + value.text.size() || !std::isfinite(value.number)) {
                fail("bad number '" + value.text + "'");
            }
            return value;
        }
        fail(std::string("unexpected character '") + c + "'");
    }
    std::string parse_string() {
        ++pos_;  // opening quote
        std::string out;
        while (pos_ < s_.size() && s_[pos_] != '"') {
            char c = s_[pos_++];
            if (c == '\\') {
                if (pos_ >= s_.size()) {
                    fail("unterminated escape");
                }
                const char e = s_[pos_++];
                switch (e) {
                    case 'n': c = '\n'; break;
                    case 't': c = '\t'; break;
                    case 'r': c = '\r'; break;
                    case 'b': c = '\b'; break;
                    case 'f': c = '\f'; break;
                    case 'u':  // keep \uXXXX as '?': metadata values that matter are ASCII
                        if (pos_ + 4 > s_.size()) {
                            fail("bad \\u escape");
                        }
                        pos_ += 4;
                        c = '?';
                        break;
                    default: c = e;  // \" \\ \/
                }
            }
            out.push_back(c);
        }
        if (pos_ >= s_.size()) {
            fail("unterminated string");
        }
        ++pos_;  // closing quote
        return out;
    }

    const std::string& s_;
    std::size_t pos_ = 0;
};

int as_int(const Json& value, const char* name) {
    if (value.type != Json::Type::Number || value.number != std::floor(value.number) ||
        std::fabs(value.number) > 1e9) {
        throw std::invalid_argument(std::string("model metadata: ") + name + " must be an integer");
    }
    return static_cast<int>(value.number);
}

// A fixed dimension, or -1 for a dynamic one (named by a string).
int dimension(const Json& value, const char* name) {
    if (value.type == Json::Type::String) {
        return -1;
    }
    const int d = as_int(value, name);
    if (d <= 0) {
        throw std::invalid_argument(std::string("model metadata: ") + name + " must be positive");
    }
    return d;
}

double number_field(const std::string& name, const std::string& text) {
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size()) {
        throw std::invalid_argument("model metadata: postprocess." + name + " must be a number, got " + text);
    }
    return value;
}

}  // namespace

Status parse_model_info(const std::string& json, ModelInfo& out) {
    try {
        const Json root = Parser(json).document();
        if (root.type != Json::Type::Object) {
            return Status::Error("model metadata: not a JSON object");
        }
        ModelInfo info;
        const Json* preset = root.find("preset");
        if (preset == nullptr || preset->type != Json::Type::String) {
            return Status::Error("model metadata: no \"preset\" string");
        }
        info.preset = preset->text;
        const Json* k = root.find("num_keypoints");
        if (k == nullptr) {
            return Status::Error("model metadata: no \"num_keypoints\"");
        }
        info.num_keypoints = as_int(*k, "num_keypoints");
        if (info.num_keypoints < 1) {
            return Status::Error("model metadata: num_keypoints must be >= 1");
        }
        const Json* shape = root.find("input_shape");
        if (shape == nullptr || shape->type != Json::Type::Array || shape->items.size() != 4) {
            return Status::Error("model metadata: input_shape must be [B, 3, H, W]");
        }
        info.batch = dimension(shape->items[0], "input_shape[0]");
        info.height = dimension(shape->items[2], "input_shape[2]");
        info.width = dimension(shape->items[3], "input_shape[3]");
        if (const Json* format = root.find("input_format"); format != nullptr && format->type != Json::Type::Null) {
            if (format->type == Json::Type::String && format->text == "float") {
                info.input_format = InputFormat::Float;
            } else if (format->type == Json::Type::String && format->text == "uint8") {
                info.input_format = InputFormat::Uint8;
            } else {
                return Status::Error("model metadata: input_format must be \"float\" or \"uint8\"");
            }
        }
        if (const Json* rows = root.find("max_candidates"); rows != nullptr && rows->type != Json::Type::Null) {
            info.max_candidates = as_int(*rows, "max_candidates");
            if (info.max_candidates < 1) {
                return Status::Error("model metadata: max_candidates must be >= 1 or null");
            }
        }
        if (const Json* post = root.find("postprocess"); post != nullptr && post->type != Json::Type::Null) {
            if (post->type != Json::Type::Object) {
                return Status::Error("model metadata: postprocess must be an object");
            }
            for (const auto& member : post->members) {
                if (member.second.type != Json::Type::Number && member.second.type != Json::Type::Bool &&
                    member.second.type != Json::Type::String) {
                    return Status::Error("model metadata: postprocess." + member.first +
                                         " must be a number, boolean or string");
                }
                info.postprocess.emplace_back(member.first, member.second.text);
            }
        }
        out = std::move(info);
        return Status();
    } catch (const std::exception& error) {
        return Status::Error(error.what());
    }
}

Status recommended_config(const ModelInfo& model, const Config& preset, Config& out) {
    try {
        Config config = preset;
        for (const auto& [name, text] : model.postprocess) {
            if (name == "conf_thres") config.conf_thres = number_field(name, text);
            else if (name == "iou_thres") config.iou_thres = number_field(name, text);
            else if (name == "conf_thres_kp") config.conf_thres_kp = number_field(name, text);
            else if (name == "iou_thres_kp") config.iou_thres_kp = number_field(name, text);
            else if (name == "conf_thres_kp_person") config.conf_thres_kp_person = number_field(name, text);
            else if (name == "overwrite_tol") config.overwrite_tol = number_field(name, text);
            else if (name == "max_det") config.max_det = static_cast<int>(number_field(name, text));
            else if (name == "max_nms") config.max_nms = static_cast<int>(number_field(name, text));
            else if (name == "use_kp_dets") {
                if (text != "true" && text != "false") {
                    return Status::Error("model metadata: postprocess.use_kp_dets must be true or false");
                }
                config.use_kp_dets = text == "true";
            } else if (name == "compat") {
                if (text != "official" && text != "default") {
                    return Status::Error("model metadata: postprocess.compat must be official or default");
                }
                config.compat = text == "official" ? Compat::Official : Compat::Default;
            } else {
                return Status::Error("model metadata: unknown post-processing option " + name);
            }
        }
        if (Status status = validate_config(config); !status) {
            return Status::Error("model metadata: bad recommended post-processing: " + status.message());
        }
        out = config;
        return Status();
    } catch (const std::exception& error) {
        return Status::Error(error.what());
    }
}

}  // namespace kapao
