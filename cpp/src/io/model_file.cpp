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
// Version 3 adds the initial state: "learn_initial_state", and tensors initial_h and initial_c
// (learned, or set and kept fixed). It writes every field.
constexpr const char* state_format_version = "3";

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

/// `with_state`: of version 3, for a model whose initial state is set or learned.
std::vector<std::pair<std::string, std::string>> metadata_of(const ModelSpec& spec, bool with_state)
{
    with_state = with_state || spec.learn_initial_state;
    const bool options = spec.has_cell_options() || with_state;
    const char* version = with_state ? state_format_version : options ? options_format_version : format_version;
    std::vector<std::pair<std::string, std::string>> metadata{{"format", format_name}, {"format_version", version}};
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
    if (with_state)
        for_each_state_field(spec, Writer{metadata});
    return metadata;
}

/// The metadata of a file, every value a string, as safetensors requires. Each getter returns
/// false with `status` set when the key is missing or its value does not parse.
class Metadata {
public:
    /// `prefix`: what every key starts with ("k." for block k of a Sequential).
    Metadata(const std::vector<std::pair<std::string, std::string>>& entries, Status& status, std::string prefix = {})
        : entries_(entries), status_(status), prefix_(std::move(prefix))
    {
    }

    bool text(const std::string& key, const std::string*& value) const
    {
        for (const auto& [name, text] : entries_) {
            if (name.size() == prefix_.size() + key.size() && name.compare(0, prefix_.size(), prefix_) == 0 &&
                name.compare(prefix_.size(), std::string::npos, key) == 0) {
                value = &text;
                return true;
            }
        }
        return fail(status_, "metadata has no \"" + prefix_ + key + "\"");
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
        return fail(status_, "metadata \"" + prefix_ + key + "\" is " + quote(text) + ", expected " + expected);
    }

    const std::vector<std::pair<std::string, std::string>>& entries_;
    Status& status_;
    std::string prefix_;
};

/// The format version of a streamrnn file, checked; `kind` is its "model" ("" for a recurrent
/// model's file).
bool read_format(const TensorFile& file, const std::string*& version, std::string& kind, Status& status)
{
    if (!file.has_metadata) {
        return fail(status, "not a streamrnn model: the header has no \"__metadata__\" object");
    }
    const Metadata metadata(file.metadata, status);
    const auto format = std::find_if(file.metadata.begin(), file.metadata.end(),
                                     [](const auto& entry) { return entry.first == "format"; });
    if (format == file.metadata.end() || format->second != format_name) {
        return fail(status, "not a streamrnn model: metadata \"format\" is not \"streamrnn\"");
    }
    if (!metadata.text("format_version", version)) {
        return false;
    }
    if (*version != format_version && *version != options_format_version && *version != state_format_version) {
        return fail(status, "format_version " + quote(*version) + " is not supported; this streamrnn reads "
                                + format_version + " to " + state_format_version);
    }
    kind.clear();
    for (const auto& [key, value] : file.metadata)
        if (key == "model")
            kind = value;
    return true;
}

/// A recurrent model's fields, as `metadata` (under its prefix) gives them in a file of `version`.
bool read_spec_fields(const Metadata& metadata, const std::string& version, ModelSpec& spec, Status& status)
{
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
    if (version != format_version)
        for_each_option_field(spec, reader);
    if (version == state_format_version)
        for_each_state_field(spec, reader);
    spec.canonicalize();
    return reader.ok;
}

bool read_spec(const TensorFile& file, ModelSpec& spec, Status& status)
{
    const std::string* version = nullptr;
    std::string kind;
    if (!read_format(file, version, kind, status))
        return false;
    if (!kind.empty()) {
        return fail(status, "a " + quote(kind) + " streamrnn model, not a single recurrent model; " +
                                (kind == "Sequential" ? "load_any_model reads it" : "Python's streamrnn.load reads it"));
    }
    return read_spec_fields(Metadata(file.metadata, status), *version, spec, status);
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

/// Copies the tensors of `file` named `prefix` + one of target's tensors into target's weights,
/// as one new version. Another tensor under the prefix is refused, unless `extra` takes it (true)
/// or fails it (false, with `status` set); so is a shape that differs and a tensor missing.
template <typename Extra>
bool fill_weights(const TensorFile& file, const std::string& prefix, Trainable& target, const std::string& what,
                  Extra&& extra, Status& status)
{
    Trainable::Update weights = target.update();
    std::size_t found = 0;
    for (const NamedTensor& entry : file.tensors) {
        if (entry.name.compare(0, prefix.size(), prefix) != 0)
            continue;
        const std::string name = entry.name.substr(prefix.size());
        const TensorInfo* tensor = target.find(name);
        const std::string where = "tensor " + quote(entry.name);
        if (!tensor) {
            if (status.ok() && extra(name, entry))
                continue;
            return status.ok() ? fail(status, where + " is not part of a " + what + " with this architecture") : false;
        }
        if (entry.shape != tensor->shape) {
            return fail(status, where + " has shape " + shape_str(entry.shape) + ", expected "
                                    + shape_str(tensor->shape));
        }
        std::copy(entry.values.begin(), entry.values.end(), weights.data() + tensor->offset);
        ++found;
    }
    // Keys are unique and each named a distinct tensor, so a shortfall is a gap.
    if (found != target.tensors().size()) {
        for (const TensorInfo& tensor : target.tensors()) {
            const auto named = [&](const NamedTensor& entry) { return entry.name == prefix + tensor.name; };
            if (std::none_of(file.tensors.begin(), file.tensors.end(), named)) {
                return fail(status, "tensor " + quote(prefix + tensor.name) + " is missing");
            }
        }
    }
    weights.commit();
    return true;
}

/// A recurrent model's weights from the tensors under `prefix`, and its initial state: learned
/// (among its tensors) or set (initial_h and initial_c beside them).
bool fill_recurrent(const TensorFile& file, const std::string& prefix, Model& model, Status& status)
{
    const ModelSpec& spec = model.spec();
    const long long cells = static_cast<long long>(spec.num_layers) * spec.directions();
    const NamedTensor* initial[2] = {nullptr, nullptr};
    const auto fixed_initial = [&](const std::string& name, const NamedTensor& entry) {
        const bool is_c = name == "initial_c" && spec.has_cell_state();
        if (name != "initial_h" && !is_c)
            return false;
        const std::vector<long long> shape{cells, is_c ? spec.hidden_size : spec.output_size()};
        if (entry.shape != shape)
            return fail(status, "tensor " + quote(entry.name) + " has shape " + shape_str(entry.shape) +
                                    ", expected " + shape_str(shape));
        initial[is_c] = &entry;
        return true;
    };
    if (!fill_weights(file, prefix, model, kind_name(spec.kind), fixed_initial, status))
        return false;
    if (initial[0] || initial[1]) {
        if (!initial[0])
            return fail(status, "tensor " + quote(prefix + "initial_h") + " is missing (initial_c is there)");
        model.set_initial_state(initial[0]->values.data(), initial[1] ? initial[1]->values.data() : nullptr);
    }
    return true;
}

bool read_model(const void* data, std::size_t size, std::optional<Model>& out, Status& status)
{
    ReadFile read;
    ModelSpec spec;
    std::optional<Model> model;
    const MetadataCheck check = [&](const TensorFile& file, Status& status_) { return read_spec(file, spec, status_); };
    if (!read_parts(data, size, check, read, status) || !make_model(spec, read.data_size, model, status) ||
        !fill_recurrent(read.file, "", *model, status)) {
        return false;
    }
    out = std::move(model);
    return true;
}

/// A recurrent model's metadata under `prefix` (format keys left out past the top), its tensors
/// and its initial state where it is set (a learned one is among its tensors).
void append_recurrent(TensorFile& file, const Model& model, const std::string& prefix)
{
    const ModelSpec& spec = model.spec();
    const bool fixed = !spec.learn_initial_state && model.has_initial_state();
    // A Sequential's file is of version 3, which has every field.
    for (auto& [key, value] : metadata_of(spec, fixed || !prefix.empty()))
        if (prefix.empty() || (key != "format" && key != "format_version"))
            file.metadata.emplace_back(prefix + key, value);
    const Trainable::Weights weights = model.weights();  // one version, whatever other threads write
    for (const TensorInfo& tensor : model.tensors()) {
        const float* values = weights.data() + tensor.offset;
        file.tensors.push_back({prefix + tensor.name, tensor.shape, std::vector<float>(values, values + tensor.size)});
    }
    if (fixed) {
        const long long cells = static_cast<long long>(spec.num_layers) * spec.directions();
        NamedTensor h{prefix + "initial_h", {cells, spec.output_size()}, {}};
        NamedTensor c{prefix + "initial_c", {cells, spec.hidden_size}, {}};
        h.values.resize(static_cast<std::size_t>(cells * spec.output_size()));
        c.values.resize(spec.has_cell_state() ? static_cast<std::size_t>(cells * spec.hidden_size) : 0);
        model.initial_state(h.values.data(), c.values.data());
        file.tensors.push_back(std::move(h));
        if (spec.has_cell_state())
            file.tensors.push_back(std::move(c));
    }
}

// ---- Sequential ---------------------------------------------------------------------------------

constexpr const char* sequential_kind = "Sequential";
constexpr const char* user_prefix = "meta.";

/// A block function by its file name (Block::name), with its alpha where it takes one.
bool parse_block_function(const std::string& name, const Metadata& metadata, ActivationFunction& f, Status& status)
{
    double alpha = 0.0;
    if (block_function_takes_alpha(name)) {
        if (!metadata.real("alpha", alpha))
            return false;
        if (!(std::abs(alpha) <= std::numeric_limits<float>::max()))
            return fail(status, "metadata alpha of " + name + " is out of a float's range");
    }
    return block_function(name, static_cast<float>(alpha), f) ||
           fail(status, "block type " + quote(name) + " is not one of Linear, LSTM, GRU, RNN, Tanh, Sigmoid, ReLU, "
                                                      "LeakyReLU, ELU, Softsign, GELU, Identity");
}

/// Block k of a Sequential's file (its metadata under "k."), weights and all; `needed` counts the
/// bytes of weights so far, against the data's.
bool read_block(const TensorFile& file, const std::string& version, std::size_t k, std::uint64_t data_size,
                std::uint64_t& needed, Block& block, Status& status)
{
    const std::string prefix = std::to_string(k) + ".";
    const Metadata metadata(file.metadata, status, prefix);
    const std::string* type = nullptr;
    if (!metadata.text("type", type))
        return false;
    auto fits = [&](std::uint64_t floats) {
        needed += floats * sizeof(float);
        return needed <= data_size ||
               fail(status, "its blocks need " + std::to_string(needed) + " bytes of weights, but the data has only " +
                                std::to_string(data_size));
    };
    if (*type == "Linear") {
        int in = 0, out = 0;
        bool bias = true;
        if (!metadata.integer("in_features", in) || !metadata.integer("out_features", out) ||
            !metadata.flag("bias", bias))
            return false;
        if (in < 1 || out < 1 || in > (1 << 24) || out > (1 << 24))
            return fail(status, "block " + std::to_string(k) + " (Linear): sizes out of range");
        if (!fits(std::uint64_t(in) * std::uint64_t(out) + (bias ? out : 0)))
            return false;
        auto linear = std::make_shared<Linear>(in, out, bias, 0);
        if (!fill_weights(file, prefix, *linear, "Linear", [](const std::string&, const NamedTensor&) { return false; },
                          status))
            return false;
        block = Block::of(std::move(linear));
        return true;
    }
    if (*type == "LSTM" || *type == "GRU" || *type == "RNN") {
        ModelSpec spec;
        if (!read_spec_fields(metadata, version, spec, status))
            return false;
        if (const std::string problem = spec.problem(); !problem.empty())
            return fail(status, "block " + std::to_string(k) + ": invalid architecture: " + problem);
        if (!fits(spec.parameter_count()))
            return false;
        auto model = std::make_shared<Model>(spec);
        if (!fill_recurrent(file, prefix, *model, status))
            return false;
        block = Block::of(std::move(model));
        return true;
    }
    ActivationFunction function;
    if (!parse_block_function(*type, metadata, function, status))
        return false;
    block = Block::of(function);
    return true;
}

bool read_sequential(const TensorFile& file, const std::string& version, std::uint64_t data_size, LoadedModel& out,
                     Status& status)
{
    const Metadata metadata(file.metadata, status);
    int count = 0;
    if (!metadata.integer("blocks", count))
        return false;
    if (count < 1 || count > 4096)
        return fail(status, "metadata \"blocks\" is " + std::to_string(count) + ", expected 1 to 4096");
    // Every tensor must belong to a block: "k.<name>" with k < count.
    for (const NamedTensor& entry : file.tensors) {
        const std::size_t dot = entry.name.find('.');
        int k = -1;
        const char* end = entry.name.data() + (dot == std::string::npos ? 0 : dot);
        const auto parsed = std::from_chars(entry.name.data(), end, k);
        if (dot == std::string::npos || parsed.ptr != end || parsed.ec != std::errc() || k < 0 || k >= count ||
            entry.name.compare(0, dot, std::to_string(k)) != 0)  // "01.weight" is no block's
            return fail(status, "tensor " + quote(entry.name) + " is not \"<block>.<name>\" of one of its " +
                                    std::to_string(count) + " blocks");
    }
    std::vector<Block> blocks(static_cast<std::size_t>(count));
    std::uint64_t needed = 0;
    for (std::size_t k = 0; k < blocks.size(); ++k)
        if (!read_block(file, version, k, data_size, needed, blocks[k], status))
            return false;
    if (const std::string problem = Sequential::problem(blocks); !problem.empty())
        return fail(status, "invalid blocks: " + problem);
    LoadedModel loaded;
    loaded.sequential = std::make_shared<Sequential>(std::move(blocks));
    for (const auto& [key, value] : file.metadata)
        if (key.compare(0, std::char_traits<char>::length(user_prefix), user_prefix) == 0)
            loaded.metadata.emplace_back(key.substr(std::char_traits<char>::length(user_prefix)), value);
    out = std::move(loaded);
    return true;
}

bool read_any(const void* data, std::size_t size, LoadedModel& out, Status& status)
{
    ReadFile read;
    const std::string* version = nullptr;
    std::string kind;
    const MetadataCheck check = [&](const TensorFile& file, Status& status_) {
        return read_format(file, version, kind, status_);
    };
    if (!read_parts(data, size, check, read, status))
        return false;
    if (kind == sequential_kind)
        return read_sequential(read.file, *version, read.data_size, out, status);
    ModelSpec spec;
    std::optional<Model> model;
    if (!read_spec(read.file, spec, status) || !make_model(spec, read.data_size, model, status) ||
        !fill_recurrent(read.file, "", *model, status))
        return false;
    out = LoadedModel{std::make_shared<Model>(std::move(*model)), nullptr, {}};
    return true;
}

}  // namespace

std::vector<std::uint8_t> save_model_bytes(const Model& model)
{
    TensorFile file;
    file.has_metadata = true;
    append_recurrent(file, model, "");
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
    for (const auto& [key, value] : metadata_of(spec, false)) {
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

std::vector<std::uint8_t> save_sequential_bytes(const Sequential& model,
                                                const std::vector<std::pair<std::string, std::string>>& metadata)
{
    TensorFile file;
    file.has_metadata = true;
    file.metadata = {{"format", format_name}, {"format_version", state_format_version}, {"model", sequential_kind},
                     {"blocks", std::to_string(model.blocks().size())}};
    for (std::size_t k = 0; k < model.blocks().size(); ++k) {
        const Block& block = model.blocks()[k];
        const std::string prefix = std::to_string(k) + ".";
        file.metadata.emplace_back(prefix + "type", block.name());
        if (block.kind == Block::Kind::recurrent) {
            append_recurrent(file, *block.recurrent, prefix);
        } else if (block.kind == Block::Kind::linear) {
            const Linear& linear = *block.linear;
            file.metadata.emplace_back(prefix + "in_features", std::to_string(linear.in_features()));
            file.metadata.emplace_back(prefix + "out_features", std::to_string(linear.out_features()));
            file.metadata.emplace_back(prefix + "bias", bool_text(linear.has_bias()));
            const Trainable::Weights weights = linear.weights();
            for (const TensorInfo& tensor : linear.tensors()) {
                const float* values = weights.data() + tensor.offset;
                file.tensors.push_back(
                    {prefix + tensor.name, tensor.shape, std::vector<float>(values, values + tensor.size)});
            }
        } else if (block_function_takes_alpha(block.name())) {
            file.metadata.emplace_back(prefix + "alpha", format_shortest(block.function.alpha));
        }
    }
    for (const auto& [key, value] : metadata)
        file.metadata.emplace_back(user_prefix + key, value);
    return save_tensor_file_bytes(file);
}

void save_sequential(const Sequential& model, const std::vector<std::pair<std::string, std::string>>& metadata,
                     const std::string& path)
{
    write_bytes(save_sequential_bytes(model, metadata), path);
}

Status try_load_any_model(const void* data, std::size_t size, LoadedModel& model)
{
    Status status;
    read_any(data, size, model, status);
    return status;
}

Status try_load_any_model(const std::string& path, LoadedModel& model)
{
    return read_file(path, [&](const std::uint8_t* data, std::size_t size, Status& status) {
        return read_any(data, size, model, status);
    });
}

LoadedModel load_any_model(const void* data, std::size_t size)
{
    return raise_or_return<LoadedModel>([&](LoadedModel& model) { return try_load_any_model(data, size, model); });
}

LoadedModel load_any_model(const std::string& path)
{
    return raise_or_return<LoadedModel>([&](LoadedModel& model) { return try_load_any_model(path, model); });
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
