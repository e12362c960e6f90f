// cpp/src/io/model_file.cpp: the safetensors writer, and a reader that checks every byte it trusts.
// Part of streamrnn, MIT licence.
#include "streamrnn/model_file.hpp"

#include "io/json.hpp"
#include "streamrnn/errors.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <limits>
#include <locale>
#include <sstream>
#include <system_error>
#include <utility>

namespace streamrnn {
namespace {

constexpr const char* format_name = "streamrnn";
constexpr const char* format_version = "1";
/// safetensors' own limit (MAX_HEADER_SIZE); it also bounds what parsing the header allocates.
constexpr std::uint64_t max_header_size = 100'000'000;
/// Our headers nest 3 deep; the limit only keeps hostile input off the stack.
constexpr int max_json_depth = 16;

/// A name or value from the file for a message: escaped, and cut short if long.
std::string quote(std::string_view text)
{
    constexpr std::size_t max_shown = 60;
    std::string out;
    json::append_string(out, text.substr(0, max_shown));
    if (text.size() > max_shown) {
        out.insert(out.size() - 1, "...");
    }
    return out;
}

// Bytes are assembled by shifts, so the file is little-endian on every host.

void store_u64_le(std::uint8_t* p, std::uint64_t v)
{
    for (int i = 0; i < 8; ++i) {
        p[i] = static_cast<std::uint8_t>(v >> (8 * i));
    }
}

std::uint64_t load_u64_le(const std::uint8_t* p)
{
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
        v |= std::uint64_t(p[i]) << (8 * i);
    }
    return v;
}

void store_f32_le(std::uint8_t* p, float f)
{
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    for (int i = 0; i < 4; ++i) {
        p[i] = static_cast<std::uint8_t>(bits >> (8 * i));
    }
}

float load_f32_le(const std::uint8_t* p)
{
    const std::uint32_t bits = std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16
                               | std::uint32_t(p[3]) << 24;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// Streams imbued with the classic locale: printf and strtod would follow the process's locale,
// and write or misread "0,1" under some of them.

bool parse_double(const std::string& text, double& value)
{
    std::istringstream in(text);
    in.imbue(std::locale::classic());
    in >> std::noskipws >> value;
    return !in.fail() && in.peek() == std::char_traits<char>::eof();
}

/// The shortest decimal that reads back as exactly `value` (17 significant digits always do).
std::string format_double(double value)
{
    for (int precision = 1;; ++precision) {
        std::ostringstream out;
        out.imbue(std::locale::classic());
        out << std::setprecision(precision) << value;
        double back = 0.0;
        if (precision == std::numeric_limits<double>::max_digits10 || (parse_double(out.str(), back) && back == value)) {
            return out.str();
        }
    }
}

const char* bool_text(bool value) { return value ? "true" : "false"; }

std::vector<std::pair<std::string, std::string>> metadata_of(const ModelSpec& spec)
{
    std::vector<std::pair<std::string, std::string>> metadata{{"format", format_name}, {"format_version", format_version}};
    struct Writer {
        std::vector<std::pair<std::string, std::string>>& out;
        void operator()(const char* key, CellKind kind) const { out.emplace_back(key, kind_name(kind)); }
        void operator()(const char* key, int value) const { out.emplace_back(key, std::to_string(value)); }
        void operator()(const char* key, bool value) const { out.emplace_back(key, bool_text(value)); }
        void operator()(const char* key, double value) const { out.emplace_back(key, format_double(value)); }
    };
    for_each_field(spec, Writer{metadata});
    return metadata;
}

/// Records a FormatError of the file in `status` and returns false, so that a check reads
/// `if (...) return fail(status, "...")`. The reader throws nothing: builds without exceptions
/// report a bad file as a Status too.
bool fail(Status& status, const std::string& what)
{
    status = Status{ErrorKind::format, 0, "model file: " + what};
    return false;
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
    if (*version != format_version) {
        return fail(status, "format_version " + quote(*version) + " is not supported; this streamrnn reads "
                                + format_version);
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
    };
    Reader reader{metadata, status};
    for_each_field(spec, reader);
    return reader.ok;
}

/// One tensor of the header, its offsets checked against the data section.
struct Entry {
    const std::string* name;
    std::vector<long long> shape;
    std::uint64_t begin;
    std::uint64_t end;
};

bool integer(const json::Value& value, const std::string& what, std::uint64_t& out, Status& status)
{
    const json::Number* number = value.as_number();
    if (!number || !number->is_integer) {
        return fail(status, what + " is not an integer in [0, 2^53]");
    }
    out = number->integer;
    return true;
}

bool read_entry(const json::Member& member, std::uint64_t data_size, Entry& entry, Status& status)
{
    const std::string where = "tensor " + quote(member.key);
    const json::Value::Object* fields = member.value.as_object();
    if (!fields) {
        return fail(status, where + " is not a JSON object");
    }
    for (const json::Member& field : *fields) {
        if (field.key != "dtype" && field.key != "shape" && field.key != "data_offsets") {
            return fail(status, where + " has an unknown field " + quote(field.key));
        }
    }
    const json::Value* dtype = json::find(*fields, "dtype");
    const json::Value* shape = json::find(*fields, "shape");
    const json::Value* offsets = json::find(*fields, "data_offsets");
    if (!dtype || !dtype->as_string() || !shape || !shape->as_array() || !offsets || !offsets->as_array()) {
        return fail(status, where + " needs a string \"dtype\" and arrays \"shape\" and \"data_offsets\"");
    }
    if (*dtype->as_string() != "F32") {
        return fail(status, where + " has dtype " + quote(*dtype->as_string()) + "; streamrnn reads F32 only");
    }
    entry = Entry{&member.key, {}, 0, 0};
    for (const json::Value& dim : *shape->as_array()) {
        std::uint64_t size = 0;
        if (!integer(dim, where + ": a shape entry", size, status)) {
            return false;
        }
        entry.shape.push_back(static_cast<long long>(size));
    }
    if (offsets->as_array()->size() != 2) {
        return fail(status, where + ": data_offsets needs 2 entries, [begin, end]");
    }
    if (!integer((*offsets->as_array())[0], where + ": data_offsets[0]", entry.begin, status)
        || !integer((*offsets->as_array())[1], where + ": data_offsets[1]", entry.end, status)) {
        return false;
    }
    if (entry.begin > entry.end || entry.end > data_size) {
        return fail(status, where + " has data_offsets [" + std::to_string(entry.begin) + ", "
                                + std::to_string(entry.end) + "], outside the " + std::to_string(data_size)
                                + " bytes of data");
    }
    return true;
}

bool read_entries(const json::Value::Object& header, std::uint64_t data_size, std::vector<Entry>& entries,
                  Status& status)
{
    for (const json::Member& member : header) {
        if (member.key != "__metadata__") {
            entries.emplace_back();
            if (!read_entry(member, data_size, entries.back(), status)) {
                return false;
            }
        }
    }
    std::vector<const Entry*> by_offset;
    for (const Entry& entry : entries) {
        by_offset.push_back(&entry);
    }
    std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
        return std::make_pair(a->begin, a->end) < std::make_pair(b->begin, b->end);
    });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
        if (by_offset[i]->begin < by_offset[i - 1]->end) {
            return fail(status, "tensors " + quote(*by_offset[i - 1]->name) + " and " + quote(*by_offset[i]->name)
                                    + " overlap in the data");
        }
    }
    return true;
}

/// Floats in a tensor of `shape`, saturating: an overflow is more than any file holds.
std::uint64_t element_count(const std::vector<long long>& shape)
{
    std::uint64_t count = 1;
    for (long long n : shape) {
        const auto dim = static_cast<std::uint64_t>(n);
        count = dim != 0 && count > UINT64_MAX / dim ? UINT64_MAX : count * dim;
    }
    return count;
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

std::string file_message(const std::string& what, const std::string& path, int error_number)
{
    return "model file: cannot " + what + " '" + path + "': " + std::generic_category().message(error_number);
}

void write_bytes(const std::vector<std::uint8_t>& bytes, const std::string& path)
{
    errno = 0;
    std::FILE* file = std::fopen(path.c_str(), "wb");
    if (!file) {
        const int error_number = errno ? errno : EIO;
        raise(ErrorKind::file, file_message("open", path, error_number), error_number);
    }
    int error_number = 0;
    if (std::fwrite(bytes.data(), 1, bytes.size(), file) != bytes.size()) {
        error_number = errno ? errno : EIO;
    }
    // Buffered data reaches the disk in fclose, so a full disk may only show up there.
    if (std::fclose(file) != 0 && error_number == 0) {
        error_number = errno ? errno : EIO;
    }
    if (error_number != 0) {
        raise(ErrorKind::file, file_message("write", path, error_number), error_number);
    }
}

bool read_bytes(const std::string& path, std::vector<std::uint8_t>& bytes, Status& status)
{
    errno = 0;
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (!file) {
        const int error_number = errno ? errno : EIO;
        status = Status{ErrorKind::file, error_number, file_message("open", path, error_number)};
        return false;
    }
    // Read in chunks rather than trusting a size from the file system: what arrives is the bound.
    constexpr std::size_t chunk = std::size_t(1) << 16;
    std::size_t got = chunk;
    while (got == chunk) {
        const std::size_t old_size = bytes.size();
        bytes.resize(old_size + chunk);
        got = std::fread(bytes.data() + old_size, 1, chunk, file);
        bytes.resize(old_size + got);
    }
    const int error_number = std::ferror(file) ? (errno ? errno : EIO) : 0;
    std::fclose(file);
    if (error_number != 0) {
        status = Status{ErrorKind::file, error_number, file_message("read", path, error_number)};
        return false;
    }
    return true;
}

/// Runs `read(data, size, status)` on the file's bytes; a FormatError names the file.
template <typename Read>
Status read_file(const std::string& path, Read read)
{
    Status status;
    std::vector<std::uint8_t> bytes;
    if (read_bytes(path, bytes, status) && !read(bytes.data(), bytes.size(), status)
        && status.kind == ErrorKind::format) {
        status.message += " ('" + path + "')";
    }
    return status;
}

/// Returns what `try_read(out)` produced, or raises its error.
template <typename T, typename TryRead>
T raise_or_return(TryRead try_read)
{
    T out{};
    if (const Status status = try_read(out); !status.ok()) {
        raise(status);
    }
    return out;
}

}  // namespace

std::vector<std::uint8_t> save_tensor_file_bytes(const TensorFile& file)
{
    std::string header = "{";
    const char* separator = "";
    if (file.has_metadata) {
        header += "\"__metadata__\":{";
        for (const auto& [key, value] : file.metadata) {
            header += separator;
            json::append_string(header, key);
            header += ':';
            json::append_string(header, value);
            separator = ",";
        }
        header += '}';
        separator = ",";
    }
    std::uint64_t offset = 0;
    for (const NamedTensor& tensor : file.tensors) {
        header += separator;
        separator = ",";
        json::append_string(header, tensor.name);
        header += ":{\"dtype\":\"F32\",\"shape\":[";
        for (std::size_t i = 0; i < tensor.shape.size(); ++i) {
            header += (i ? "," : "") + std::to_string(tensor.shape[i]);
        }
        const std::uint64_t end = offset + sizeof(float) * tensor.values.size();
        header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
        offset = end;
    }
    header += '}';
    // safetensors pads with spaces so that the data starts 8-byte aligned.
    header.append((8 - header.size() % 8) % 8, ' ');

    std::vector<std::uint8_t> bytes(8 + header.size() + offset);
    store_u64_le(bytes.data(), header.size());
    std::memcpy(bytes.data() + 8, header.data(), header.size());
    std::uint8_t* out = bytes.data() + 8 + header.size();
    for (const NamedTensor& tensor : file.tensors) {
        for (float value : tensor.values) {
            store_f32_le(out, value);
            out += sizeof(float);
        }
    }
    return bytes;
}

void save_tensor_file(const TensorFile& file, const std::string& path) { write_bytes(save_tensor_file_bytes(file), path); }

namespace {

/// A tensor file and the size of its data section. A model file's metadata is read (into the spec
/// that read_parts is given) before its tensors, so that a file of another kind is named as such.
struct ReadFile {
    TensorFile file;
    std::uint64_t data_size = 0;
};

bool read_parts(const void* data, std::size_t size, ModelSpec* spec, ReadFile& read, Status& status)
{
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    if (size < 8) {
        return fail(status, std::to_string(size) + " bytes are too few to hold the 8-byte header length");
    }
    const std::uint64_t header_size = load_u64_le(bytes);
    if (header_size > size - 8) {
        return fail(status, "the header length " + std::to_string(header_size) + " exceeds the "
                                + std::to_string(size - 8) + " bytes after it (truncated file?)");
    }
    if (header_size > max_header_size) {
        return fail(status, "the header length " + std::to_string(header_size)
                                + " exceeds safetensors' limit of " + std::to_string(max_header_size));
    }
    json::Value header;
    if (json::Error error; !json::parse(bytes + 8, header_size, max_json_depth, header, error)) {
        return fail(status, "the header is not valid JSON (byte " + std::to_string(error.offset) + " of it: "
                                + error.message + ")");
    }
    const json::Value::Object* members = header.as_object();
    if (!members) {
        return fail(status, "the header is not a JSON object");
    }

    TensorFile& file = read.file;
    if (const json::Value* value = json::find(*members, "__metadata__")) {
        if (const json::Value::Object* object = value->as_object()) {
            file.has_metadata = true;
            for (const json::Member& member : *object) {
                if (!member.value.as_string()) {
                    return fail(status, "metadata " + quote(member.key) + " is not a string");
                }
                file.metadata.emplace_back(member.key, *member.value.as_string());
            }
        }
    }
    if (spec && !read_spec(file, *spec, status)) {
        return false;
    }
    const std::uint8_t* tensor_data = bytes + 8 + header_size;
    const std::uint64_t data_size = size - 8 - header_size;
    read.data_size = data_size;
    std::vector<Entry> entries;
    if (!read_entries(*members, data_size, entries, status)) {
        return false;
    }
    for (const Entry& entry : entries) {
        const std::uint64_t count = element_count(entry.shape);
        if (count > data_size / sizeof(float) || entry.end - entry.begin != sizeof(float) * count) {
            return fail(status, "tensor " + quote(*entry.name) + " has " + std::to_string(entry.end - entry.begin)
                                    + " bytes of data, expected "
                                    + (count > data_size ? std::string("more than the file holds")
                                                         : std::to_string(sizeof(float) * count))
                                    + " for its shape " + shape_str(entry.shape));
        }
        NamedTensor tensor{*entry.name, entry.shape, std::vector<float>(count)};
        const std::uint8_t* in = tensor_data + entry.begin;
        for (float& value : tensor.values) {
            value = load_f32_le(in);
            in += sizeof(float);
        }
        file.tensors.push_back(std::move(tensor));
    }
    return true;
}

bool read_tensors(const void* data, std::size_t size, TensorFile& file, Status& status)
{
    ReadFile read;
    if (!read_parts(data, size, nullptr, read, status)) {
        return false;
    }
    file = std::move(read.file);
    return true;
}

bool read_model(const void* data, std::size_t size, std::optional<Model>& out, Status& status)
{
    ReadFile read;
    ModelSpec spec;
    std::optional<Model> model;
    if (!read_parts(data, size, &spec, read, status) || !make_model(spec, read.data_size, model, status)) {
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

Status try_read_tensor_file(const void* data, std::size_t size, TensorFile& file)
{
    Status status;
    read_tensors(data, size, file, status);
    return status;
}

Status try_read_tensor_file(const std::string& path, TensorFile& file)
{
    return read_file(path, [&](const std::uint8_t* data, std::size_t size, Status& status) {
        return read_tensors(data, size, file, status);
    });
}

TensorFile read_tensor_file(const void* data, std::size_t size)
{
    return raise_or_return<TensorFile>([&](TensorFile& file) { return try_read_tensor_file(data, size, file); });
}

TensorFile read_tensor_file(const std::string& path)
{
    return raise_or_return<TensorFile>([&](TensorFile& file) { return try_read_tensor_file(path, file); });
}

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
