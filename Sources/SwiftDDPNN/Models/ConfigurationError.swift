/// A setting that makes no sense, named as a library user writes it: the property path of the
/// field (`batchSize`, `model.depth`), relative to the configuration that was validated.
///
/// `description` reads `batchSize must be at least 1, got 0`. The message keeps every field it
/// names as a reference, so a front end that exposes the fields under other names (`ddp`'s flags)
/// renders the same error in its own terms with `description(naming:setting:)`.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A piece of a message: text, a field's name, or a suggested setting of a field.
    public enum Part: Sendable, Equatable {
        case text(String)
        /// A field's property path.
        case field(String)
        /// A way out: give `field` this value (`evaluate = false`); the renderer phrases it.
        case setting(field: String, value: String)
    }

    /// A message whose interpolations `\(field: "momentum")` and `\(setting: "shuffle", false)`
    /// stay references; any other interpolation is text.
    public struct Message: Sendable, Equatable, ExpressibleByStringInterpolation {
        public var parts: [Part]

        public init(stringLiteral value: String) { parts = [.text(value)] }
        public init(stringInterpolation: StringInterpolation) { parts = stringInterpolation.parts }

        public struct StringInterpolation: StringInterpolationProtocol {
            var parts: [Part] = []
            public init(literalCapacity: Int, interpolationCount: Int) {}
            public mutating func appendLiteral(_ literal: String) { parts.append(.text(literal)) }
            public mutating func appendInterpolation<T>(_ value: T) { parts.append(.text("\(value)")) }
            public mutating func appendInterpolation(field: String) { parts.append(.field(field)) }
            public mutating func appendInterpolation<T>(setting field: String, _ value: T) {
                parts.append(.setting(field: field, value: "\(value)"))
            }
        }
    }

    /// The field the error is about (named in the message, or the one to change).
    public let field: String
    public let message: Message

    /// `field`, a space, then `rest`: `ConfigurationError("epochs", "must be at least 1, got 0")`.
    public init(_ field: String, _ rest: Message) {
        self.field = field
        message = Message(parts: [.field(field), .text(" ")] + rest.parts)
    }

    /// A message of any form about `field`.
    public init(field: String, message: Message) {
        self.field = field
        self.message = message
    }

    /// The fields the message names (references and settings), in order, without repeats.
    public var namedFields: [String] {
        var seen: Set<String> = []
        return message.parts.compactMap { part -> String? in
            switch part {
            case .text: nil
            case .field(let name), .setting(let name, _): seen.insert(name).inserted ? name : nil
            }
        }
    }

    /// The same error for the configuration that holds this one under `parent`
    /// (`model.width` for `width`, when a `TrainingConfiguration` checks its `model`).
    public func nested(in parent: String) -> ConfigurationError {
        let parts = message.parts.map { part -> Part in
            switch part {
            case .text: part
            case .field(let name): .field(parent + "." + name)
            case .setting(let name, let value): .setting(field: parent + "." + name, value: value)
            }
        }
        return ConfigurationError(field: parent + "." + field, message: Message(parts: parts))
    }

    /// The message with each field called `name(field)` and each suggested setting phrased by
    /// `setting(field, value)`.
    public func description(naming name: (String) -> String, setting: (String, String) -> String) -> String {
        message.parts.map { part in
            switch part {
            case .text(let text): text
            case .field(let field): name(field)
            case .setting(let field, let value): setting(field, value)
            }
        }.joined()
    }

    /// The message in the library's names: `set evaluate = false` for a setting.
    public var description: String { description(naming: { $0 }, setting: { "set \($0) = \($1)" }) }
}

extension ConfigurationError.Message {
    init(parts: [ConfigurationError.Part]) { self.parts = parts }
}
