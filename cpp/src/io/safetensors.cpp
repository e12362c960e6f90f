// cpp/src/io/safetensors.cpp: the safetensors writer, and a reader that checks every byte it
// trusts. Part of streamrnn, MIT licence.
#include "io/safetensors.hpp"

#include "io/json.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <utility>

namespace streamrnn {
namespace io {

namespace {

/// safetensors' own limit (MAX_HEADER_SIZE); it also bounds what parsing the header allocates.
constexpr std::uint64_t max_header_size = 100'000'000;
/// Our headers nest 3 deep; the limit only keeps hostile input off the stack.
constexpr int max_json_depth = 16;

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

std::string file_message(const std::string& what, const std::string& path, int error_number)
{
    return "model file: cannot " + what + " '" + path + "': " + std::generic_category().message(error_number);
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

}  // namespace

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

/// Records a FormatError of the file in `status` and returns false, so that a check reads
/// `if (...) return fail(status, "...")`. The reader throws nothing: builds without exceptions
/// report a bad file as a Status too.
bool fail(Status& status, const std::string& what)
{
    status = Status{ErrorKind::format, 0, "model file: " + what};
    return false;
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

bool read_parts(const void* data, std::size_t size, const MetadataCheck& check, ReadFile& read, Status& status)
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
    if (check && !check(file, status)) {
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

}  // namespace io

using namespace io;  // the public functions below are io's, under the API's names

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

}  // namespace streamrnn
