// cpp/src/io/model_file.cpp: a model as a safetensors file: its architecture as the metadata, its
// weights as the tensors, and the checks that they match. Part of streamrnn, MIT licence.
#include "streamrnn/model_file.hpp"

#include "io/safetensors.hpp"

#include "streamrnn/errors.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iomanip>
#include <limits>
#include <locale>
#include <sstream>
#include <utility>

namespace streamrnn {
namespace {

using namespace io;

constexpr const char* format_name = "streamrnn";
// Version 2 adds ONNX's cell options to the metadata. A model without options is written as
// version 1, which every reader reads; one with them as 2, which a reader of 1 refuses rather than
// run it without them.
constexpr const char* format_version = "1";
constexpr const char* options_format_version = "2";

// Streams imbued with the classic locale: printf and strtod would follow the process's locale,
// and write or misread "0,1" under some of them.

bool parse_double(const std::string& text, double& value)
{
    std::istringstream in(text);
    in.imbue(std::locale::classic());
    in >> std::noskipws >> value;
    return !in.fail() && in.peek() == std::char_traits<char>::eof();
}

/// The shortest decimal that reads back as exactly `value`, a double or a float (17 and 9
/// significant digits always do).
template <typename Real>
std::string format_shortest(Real value)
{
    for (int precision = 1;; ++precision) {
        std::ostringstream out;
        out.imbue(std::locale::classic());
        out << std::setprecision(precision) << value;
        double back = 0.0;
        if (precision == std::numeric_limits<Real>::max_digits10
            || (parse_double(out.str(), back) && static_cast<Real>(back) == value)) {
            return out.str();
        }
    }
}

const char* bool_text(bool value) { return value ? "true" : "false"; }

/// Activations as "Sigmoid,LeakyRelu:0.01,HardSigmoid:0.2:0.5": each name with the alpha and beta
/// it takes.
std::string activations_text(const std::vector<ActivationFunction>& functions)
{
    std::string text;
    for (const ActivationFunction& f : functions) {
        text += (text.empty() ? "" : ",") + std::string(activation_name(f.kind));
        const int count = activation_parameter_count(f.kind);
        if (count >= 1)
            text += ":" + format_shortest(f.alpha);
        if (count == 2)
            text += ":" + format_shortest(f.beta);
    }
    return text;
}

/// The inverse of activations_text: false for a name it does not know or a number that does not
/// parse or fit a float.
bool parse_activations(const std::string& text, std::vector<ActivationFunction>& functions)
{
    functions.clear();
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find(',', start);
        end = end == std::string::npos ? text.size() : end;
        const std::string item = text.substr(start, end - start);
        const std::size_t colon = item.find(':');
        Activation kind{};
        if (!parse_activation_name(item.substr(0, colon), kind))
            return false;
        ActivationFunction f{kind};
        float* parameters[] = {&f.alpha, &f.beta};
        std::size_t at = colon;
        for (float* parameter : parameters) {
            if (at == std::string::npos)
                break;
            const std::size_t next = item.find(':', at + 1);
            double value = 0.0;
            if (!parse_double(item.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1), value)
                || !(std::abs(value) <= std::numeric_limits<float>::max()))
                return false;
            *parameter = static_cast<float>(value);
            at = next;
        }
        if (at != std::string::npos)
            return false;
        functions.push_back(f);
        start = end + 1;
    }
    return text.empty() || text.back() != ',';
}

std::vector<std::pair<std::string, std::string>> metadata_of(const ModelSpec& spec)
{
    const bool options = spec.has_cell_options();
    std::vector<std::pair<std::string, std::string>> metadata{
        {"format", format_name}, {"format_version", options ? options_format_version : format_version}};
    struct Writer {
        std::vector<std::pair<std::string, std::string>>& out;
        void operator()(const char* key, CellKind kind) const { out.emplace_back(key, kind_name(kind)); }
        void operator()(const char* key, int value) const { out.emplace_back(key, std::to_string(value)); }
        void operator()(const char* key, bool value) const { out.emplace_back(key, bool_text(value)); }
        void operator()(const char* key, float value) const { out.emplace_back(key, format_shortest(value)); }
        void operator()(const char* key, double value) const { out.emplace_back(key, format_shortest(value)); }
        void operator()(const char* key, const std::vector<ActivationFunction>& value) const
        {
            out.emplace_back(key, activations_text(value));
        }
    };
    for_each_base_field(spec, Writer{metadata});
    if (options)
        for_each_option_field(spec, Writer{metadata});
    return metadata;
}

/// The metadata of a file, every value a string, as safetensors requires. Each getter returns
/// false with `status` set when the key is missing or its value does not parse.
class Metadata {
public:
    Metadata(const std::vector<std::pair<std::string, std::string>>& entries, Status& status)
        : entries_(entries), status_(status)
    {
    }

    bool text(const std::string& key, const std::string*& value) const
    {
        for (const auto& [name, text] : entries_) {
            if (name == key) {
                value = &text;
                return true;
            }
        }
        return fail(status_, "metadata has no \"" + key + "\"");
    }

    bool integer(const std::string& key, int& value) const
    {
        const std::string* text = nullptr;
        if (!this->text(key, text)) {
            return false;
        }
        const char* end = text->data() + text->size();
        const auto result = std::from_chars(text->data(), end, value);
        if (text->empty() || result.ec != std::errc() || result.ptr != end) {
            return wrong(key, *text, "a decimal int");
        }
        return true;
    }

    bool flag(const std::string& key, bool& value) const
    {
        const std::string* text = nullptr;
        if (!this->text(key, text)) {
            return false;
        }
        if (*text != "true" && *text != "false") {
            return wrong(key, *text, "\"true\" or \"false\"");
        }
        value = *text == "true";
        return true;
    }

    bool real(const std::string& key, double& value) const
    {
        const std::string* text = nullptr;
        if (!this->text(key, text)) {
            return false;
        }
        return parse_double(*text, value) || wrong(key, *text, "a decimal number");
    }

private:
    bool wrong(const std::string& key, const std::string& text, const char* expected) const
    {
        return fail(status_, "metadata \"" + key + "\" is " + quote(text) + ", expected " + expected);
    }

    const std::vector<std::pair<std::string, std::string>>& entries_;
    Status& status_;
};

bool read_spec(const TensorFile& file, ModelSpec& spec, Status& status)
{
    if (!file.has_metadata) {
        return fail(status, "not a streamrnn model: the header has no \"__metadata__\" object");
    }
    const Metadata metadata(file.metadata, status);
    for (const auto& [key, value] : file.metadata) {
        if (key == "model") {
            return fail(status, "a composite streamrnn model (" + quote(value) + "), not a single recurrent model; "
                                "Python's streamrnn.load reads it");
        }
    }
    const auto format = std::find_if(file.metadata.begin(), file.metadata.end(),
                                     [](const auto& entry) { return entry.first == "format"; });
    if (format == file.metadata.end() || format->second != format_name) {
        return fail(status, "not a streamrnn model: metadata \"format\" is not \"streamrnn\"");
    }
    const std::string* version = nullptr;
    if (!metadata.text("format_version", version)) {
        return false;
    }
    if (*version != format_version && *version != options_format_version) {
        return fail(status, "format_version " + quote(*version) + " is not supported; this streamrnn reads "
                                + format_version + " and " + options_format_version);
    }
    // Field by field, stopping at the first that is missing or does not parse.
    struct Reader {
        const Metadata& metadata;
        Status& status;
        bool ok = true;
        void operator()(const char* key, CellKind& kind)
        {
            const std::string* mode = nullptr;
            if (ok && (ok = metadata.text(key, mode)) && !(ok = parse_kind_name(*mode, kind)))
                fail(status, "metadata \"mode\" is " + quote(*mode) + ", expected LSTM, GRU, RNN_TANH or RNN_RELU");
        }
        void operator()(const char* key, int& value) { ok = ok && metadata.integer(key, value); }
        void operator()(const char* key, bool& value) { ok = ok && metadata.flag(key, value); }
        void operator()(const char* key, double& value) { ok = ok && metadata.real(key, value); }
        void operator()(const char* key, float& value)
        {
            double wide = 0.0;
            if (ok && (ok = metadata.real(key, wide)) && !(ok = std::abs(wide) <= std::numeric_limits<float>::max()))
                fail(status, std::string("metadata \"") + key + "\" is out of a float's range");
            value = static_cast<float>(wide);
        }
        void operator()(const char* key, std::vector<ActivationFunction>& value)
        {
            const std::string* text = nullptr;
            if (ok && (ok = metadata.text(key, text)) && !(ok = parse_activations(*text, value)))
                fail(status, std::string("metadata \"") + key + "\" is " + quote(*text) +
                                 ", expected functions such as \"Sigmoid,LeakyRelu:0.01\"");
        }
    };
    Reader reader{metadata, status};
    for_each_base_field(spec, reader);
    if (*version == options_format_version)
        for_each_option_field(spec, reader);
    spec.canonicalize();
    return reader.ok;
}

bool make_model(const ModelSpec& spec, std::uint64_t data_size, std::optional<Model>& model, Status& status)
{
    if (const std::string problem = spec.problem(); !problem.empty()) {
        return fail(status, "invalid architecture: " + problem);
    }
    // Checked before Model(spec) allocates, so that a forged size cannot make a small file
    // allocate gigabytes.
    const std::uint64_t needed = spec.parameter_count() * sizeof(float);
    if (needed > data_size) {
        return fail(status, "its architecture needs " + std::to_string(needed)
                                + " bytes of weights, but the data has only " + std::to_string(data_size));
    }
    model.emplace(spec);
    return true;
}

bool read_model(const void* data, std::size_t size, std::optional<Model>& out, Status& status)
{
    ReadFile read;
    ModelSpec spec;
    std::optional<Model> model;
    const MetadataCheck check = [&](const TensorFile& file, Status& status_) { return read_spec(file, spec, status_); };
    if (!read_parts(data, size, check, read, status) || !make_model(spec, read.data_size, model, status)) {
        return false;
    }
    const TensorFile& file = read.file;
    Trainable::Update weights = model->update();
    for (const NamedTensor& entry : file.tensors) {
        const TensorInfo* tensor = model->find(entry.name);
        const std::string where = "tensor " + quote(entry.name);
        if (!tensor) {
            return fail(status, where + " is not part of a " + kind_name(spec.kind) + " with this architecture");
        }
        if (entry.shape != tensor->shape) {
            return fail(status, where + " has shape " + shape_str(entry.shape) + ", expected "
                                    + shape_str(tensor->shape));
        }
        std::copy(entry.values.begin(), entry.values.end(), weights.data() + tensor->offset);
    }
    // Keys are unique and each named a distinct tensor of the model, so a shortfall is a gap.
    if (file.tensors.size() != model->tensors().size()) {
        for (const TensorInfo& tensor : model->tensors()) {
            const auto named = [&](const NamedTensor& entry) { return entry.name == tensor.name; };
            if (std::none_of(file.tensors.begin(), file.tensors.end(), named)) {
                return fail(status, "tensor " + quote(tensor.name) + " is missing");
            }
        }
    }
    weights.commit();
    out = std::move(model);
    return true;
}

}  // namespace

std::vector<std::uint8_t> save_model_bytes(const Model& model)
{
    TensorFile file;
    file.has_metadata = true;
    file.metadata = metadata_of(model.spec());
    const Trainable::Weights weights = model.weights();  // one version, whatever other threads write
    for (const TensorInfo& tensor : model.tensors()) {
        const float* values = weights.data() + tensor.offset;
        file.tensors.push_back({tensor.name, tensor.shape, std::vector<float>(values, values + tensor.size)});
    }
    return save_tensor_file_bytes(file);
}

void save_model(const Model& model, const std::string& path) { write_bytes(save_model_bytes(model), path); }

Status try_load_model(const void* data, std::size_t size, std::optional<Model>& model)
{
    Status status;
    read_model(data, size, model, status);
    return status;
}

std::string architecture_text(const ModelSpec& spec)
{
    std::string text;
    for (const auto& [key, value] : metadata_of(spec)) {
        if (key == "format" || key == "format_version")
            continue;
        text += (text.empty() ? "" : ";") + key + "=" + value;
    }
    return text;
}

Status try_load_model(const std::string& path, std::optional<Model>& model)
{
    return read_file(path, [&](const std::uint8_t* data, std::size_t size, Status& status) {
        return read_model(data, size, model, status);
    });
}

Model load_model(const void* data, std::size_t size)
{
    return *raise_or_return<std::optional<Model>>(
        [&](std::optional<Model>& model) { return try_load_model(data, size, model); });
}

Model load_model(const std::string& path)
{
    return *raise_or_return<std::optional<Model>>(
        [&](std::optional<Model>& model) { return try_load_model(path, model); });
}

}  // namespace streamrnn
