// cpp/src/io/json.hpp: a small strict JSON reader and string writer for safetensors headers. Over 400
// lines, as one piece: the reader's parts (values, strings and their UTF-8, numbers) make sense only together.
// Part of streamrnn, MIT licence.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace streamrnn::json {

/// Why a text is not JSON, and the byte where reading stopped.
struct Error {
    std::string message;
    std::size_t offset = 0;
};

/// A number keeps only what safetensors needs: its value when it is a plain integer in
/// [0, 2^53], the range where every JSON reader agrees on it. Other numbers are valid JSON
/// but never an integer.
struct Number {
    bool is_integer = false;
    std::uint64_t integer = 0;
};

struct Member;

struct Value {
    using Array = std::vector<Value>;
    using Object = std::vector<Member>;  ///< in file order; keys are unique

    // A variant keeps a node at 40 bytes: a hostile header of "[0,0,0,..." costs 20 bytes of
    // memory per byte of header, not 50.
    std::variant<std::nullptr_t, bool, Number, std::string, Array, Object> data;

    const std::string* as_string() const { return std::get_if<std::string>(&data); }
    const Number* as_number() const { return std::get_if<Number>(&data); }
    const Array* as_array() const { return std::get_if<Array>(&data); }
    const Object* as_object() const { return std::get_if<Object>(&data); }
};

struct Member {
    std::string key;
    Value value;
};

/// The member called `key` of an object, or null.
inline const Value* find(const Value::Object& object, std::string_view key)
{
    for (const Member& member : object) {
        if (member.key == key) {
            return &member.value;
        }
    }
    return nullptr;
}

namespace detail {

inline constexpr std::uint64_t max_exact_integer = std::uint64_t(1) << 53;

/// Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no
/// surrogates, at most U+10FFFF), or 0 when there is none.
inline std::size_t utf8_length(const unsigned char* p, const unsigned char* end)
{
    const unsigned char c = p[0];
    std::size_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (static_cast<std::size_t>(end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (std::size_t i = 2; i < n; ++i) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return n;
}

inline void append_utf8(std::string& out, std::uint32_t code_point)
{
    if (code_point < 0x80) {
        out += static_cast<char>(code_point);
    } else if (code_point < 0x800) {
        out += static_cast<char>(0xC0 | (code_point >> 6));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else if (code_point < 0x10000) {
        out += static_cast<char>(0xE0 | (code_point >> 12));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (code_point >> 18));
        out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    }
}

/// Recursive descent over RFC 8259 JSON; nesting deeper than max_depth is an error, so hostile
/// input cannot exhaust the stack. It throws nothing: fail() keeps the first error and moves to
/// the end of the text, where every rule stops, and each caller of fail() returns at once.
class Parser {
public:
    Parser(const unsigned char* begin, const unsigned char* end, int max_depth)
        : begin_(begin), p_(begin), end_(end), depth_left_(max_depth)
    {
    }

    /// False, with `error` set, when the text is not one JSON value.
    bool document(Value& out, Error& error)
    {
        Value value = this->value();
        skip_space();
        if (p_ != end_) {
            fail("unexpected data after the JSON value");
        }
        if (failed_) {
            error = error_;
            return false;
        }
        out = std::move(value);
        return true;
    }

private:
    void fail(const std::string& what)
    {
        if (!failed_) {
            failed_ = true;
            error_ = Error{what, static_cast<std::size_t>(p_ - begin_)};
        }
        p_ = end_;
    }

    void skip_space()
    {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) {
            ++p_;
        }
    }

    bool consume(char c)
    {
        if (p_ != end_ && *p_ == static_cast<unsigned char>(c)) {
            ++p_;
            return true;
        }
        return false;
    }

    void expect(char c, const char* what)
    {
        skip_space();
        if (!consume(c)) {
            fail(std::string("expected ") + what);
        }
    }

    void literal(std::string_view word)
    {
        if (static_cast<std::size_t>(end_ - p_) < word.size()
            || !std::equal(word.begin(), word.end(), p_)) {
            fail("invalid literal");
            return;
        }
        p_ += word.size();
    }

    Value value()
    {
        skip_space();
        if (p_ == end_) {
            fail("unexpected end of JSON");
            return {};
        }
        switch (*p_) {
        case '{': return nested([this] { return object(); });
        case '[': return nested([this] { return array(); });
        case '"': return Value{string()};
        case 't': literal("true"); return Value{true};
        case 'f': literal("false"); return Value{false};
        case 'n': literal("null"); return Value{nullptr};
        default: return Value{number()};
        }
    }

    template <typename Parse>
    Value nested(Parse parse)
    {
        if (depth_left_ == 0) {
            fail("JSON nested too deeply");
            return {};
        }
        --depth_left_;
        Value value{parse()};
        ++depth_left_;
        return value;
    }

    Value::Object object()
    {
        ++p_;  // '{'
        Value::Object members;
        skip_space();
        if (!consume('}')) {
            do {
                skip_space();
                if (p_ == end_ || *p_ != '"') {
                    fail("expected a string key");
                    return members;
                }
                std::string key = string();
                expect(':', "':' after an object key");
                members.push_back({std::move(key), value()});
                skip_space();
            } while (consume(','));
            expect('}', "',' or '}' in an object");
        }
        check_unique_keys(members);
        return members;
    }

    // Sorting pointers keeps the check O(n log n) however many keys a header holds.
    void check_unique_keys(const Value::Object& members)
    {
        std::vector<const std::string*> keys;
        keys.reserve(members.size());
        for (const Member& member : members) {
            keys.push_back(&member.key);
        }
        std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a < *b; });
        const auto twin = std::adjacent_find(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a == *b; });
        if (twin != keys.end()) {
            fail("duplicate key \"" + **twin + "\"");
        }
    }

    Value::Array array()
    {
        ++p_;  // '['
        Value::Array items;
        skip_space();
        if (!consume(']')) {
            do {
                items.push_back(value());
                skip_space();
            } while (consume(','));
            expect(']', "',' or ']' in an array");
        }
        return items;
    }

    std::string string()
    {
        ++p_;  // '"'
        std::string out;
        for (;;) {
            if (p_ == end_) {
                fail("unterminated string");
                return out;
            }
            const unsigned char c = *p_;
            if (c == '"') {
                ++p_;
                return out;
            }
            if (c < 0x20) {
                fail("control character in a string");
                return out;
            }
            if (c == '\\') {
                ++p_;
                escape(out);
                continue;
            }
            const std::size_t n = utf8_length(p_, end_);
            if (n == 0) {
                fail("invalid UTF-8 in a string");
                return out;
            }
            out.append(reinterpret_cast<const char*>(p_), n);
            p_ += n;
        }
    }

    void escape(std::string& out)
    {
        if (p_ == end_) {
            fail("unterminated string");
            return;
        }
        const unsigned char c = *p_++;
        switch (c) {
        case '"': out += '"'; return;
        case '\\': out += '\\'; return;
        case '/': out += '/'; return;
        case 'b': out += '\b'; return;
        case 'f': out += '\f'; return;
        case 'n': out += '\n'; return;
        case 'r': out += '\r'; return;
        case 't': out += '\t'; return;
        case 'u': break;
        default: --p_; fail("invalid escape in a string"); return;
        }
        std::uint32_t code_point = hex4();
        if (failed_) {
            return;
        }
        if (code_point >= 0xDC00 && code_point <= 0xDFFF) {
            fail("unpaired low surrogate in a \\u escape");
            return;
        }
        if (code_point >= 0xD800 && code_point <= 0xDBFF) {
            if (!consume('\\') || !consume('u')) {
                fail("unpaired high surrogate in a \\u escape");
                return;
            }
            const std::uint32_t low = hex4();
            if (failed_) {
                return;
            }
            if (low < 0xDC00 || low > 0xDFFF) {
                fail("unpaired high surrogate in a \\u escape");
                return;
            }
            code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(out, code_point);
    }

    std::uint32_t hex4()
    {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i, ++p_) {
            if (p_ == end_) {
                fail("unterminated \\u escape");
                return 0;
            }
            const unsigned char c = *p_;
            v <<= 4;
            if (c >= '0' && c <= '9') {
                v |= c - '0';
            } else if (c >= 'a' && c <= 'f') {
                v |= c - 'a' + 10;
            } else if (c >= 'A' && c <= 'F') {
                v |= c - 'A' + 10;
            } else {
                fail("invalid hex digit in a \\u escape");
                return 0;
            }
        }
        return v;
    }

    bool digit() const { return p_ != end_ && *p_ >= '0' && *p_ <= '9'; }

    /// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    Number number()
    {
        Number number;
        const bool negative = consume('-');
        if (!digit()) {
            fail(negative ? "expected a digit after '-'" : "unexpected character");
            return number;
        }
        // Accumulating saturates just past 2^53, so no digit string can overflow.
        std::uint64_t integer = 0;
        if (!consume('0')) {
            while (digit()) {
                integer = std::min(integer * 10 + (*p_++ - '0'), max_exact_integer + 1);
            }
        }
        if (digit()) {
            fail("leading zero in a number");
            return number;
        }
        bool fraction_or_exponent = false;
        if (consume('.')) {
            fraction_or_exponent = true;
            digits("expected a digit after '.'");
        }
        if (consume('e') || consume('E')) {
            fraction_or_exponent = true;
            if (!consume('+')) {
                consume('-');
            }
            digits("expected a digit in the exponent");
        }
        number.is_integer = !negative && !fraction_or_exponent && integer <= max_exact_integer;
        number.integer = number.is_integer ? integer : 0;
        return number;
    }

    void digits(const char* what)
    {
        if (!digit()) {
            fail(what);
            return;
        }
        while (digit()) {
            ++p_;
        }
    }

    const unsigned char* begin_;
    const unsigned char* p_;
    const unsigned char* end_;
    int depth_left_;
    bool failed_ = false;
    Error error_;
};

}  // namespace detail

/// Parses the JSON text [begin, begin + size), which may have white space around its one value,
/// into `out`. False, with `error` set, for anything RFC 8259 rejects, for duplicate keys, and for
/// nesting deeper than max_depth.
inline bool parse(const void* begin, std::size_t size, int max_depth, Value& out, Error& error)
{
    const auto* bytes = static_cast<const unsigned char*>(begin);
    return detail::Parser(bytes, bytes + size, max_depth).document(out, error);
}

/// Appends `text` (UTF-8) as a JSON string literal.
inline void append_string(std::string& out, std::string_view text)
{
    static const char hex[] = "0123456789abcdef";
    out += '"';
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 0xF];
            } else {
                out += ch;
            }
        }
    }
    out += '"';
}

}  // namespace streamrnn::json
