// cpp/src/io/safetensors.hpp: the safetensors container that model files are: a reader that
// checks every byte it trusts, the file I/O, and the messages of both. Part of streamrnn, MIT licence.
#pragma once

#include "streamrnn/errors.hpp"
#include "streamrnn/model_file.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace streamrnn::io {

/// A name or value from the file for a message: escaped, and cut short if long.
std::string quote(std::string_view text);

/// Records a FormatError of the file in `status` and returns false, so that a check reads
/// `if (...) return fail(status, "...")`. The readers throw nothing: builds without exceptions
/// report a bad file as a Status too.
bool fail(Status& status, const std::string& what);

/// A tensor file and the size of its data section.
struct ReadFile {
    TensorFile file;
    std::uint64_t data_size = 0;
};

/// What a reader checks of a file's metadata before its tensors are read (a model file: its
/// architecture, so that a file of another kind is named as such); false with `status` set.
using MetadataCheck = std::function<bool(const TensorFile& file, Status& status)>;

/// Reads the file of `size` bytes at `data` into `read`, every offset, size and dtype checked;
/// `check` (or none) runs once the metadata is read.
bool read_parts(const void* data, std::size_t size, const MetadataCheck& check, ReadFile& read, Status& status);

/// Writes `bytes` to `path`; throws FileError (with errno) when it cannot be opened or written.
void write_bytes(const std::vector<std::uint8_t>& bytes, const std::string& path);

/// The bytes of the file at `path`, or false with a FileError in `status`.
bool read_bytes(const std::string& path, std::vector<std::uint8_t>& bytes, Status& status);

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

}  // namespace streamrnn::io
