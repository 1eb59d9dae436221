// StrykerJS ignore-plugins for mutants that are equivalent by a rule of the platform, so they
// stay visible in the report (status "Ignored") without counting against the score.
// https://stryker-mutator.io/docs/stryker-js/disable-mutants/#using-an-ignore-plugin
import { declareClassPlugin, PluginKind } from "@stryker-mutator/api/plugin";

/**
 * `"utf8"` passed as an encoding (`Buffer.from(s, "utf8")`, `hash.update(s, "utf8")`,
 * `buffer.toString("utf8")`): Node reads an empty encoding as its default, UTF-8, so the only
 * mutant of the literal (`""`) behaves exactly as the original.
 */
class Utf8EncodingIgnorer {
  shouldIgnore(path) {
    if (
      path.isStringLiteral() &&
      (path.node.value === "utf8" || path.node.value === "utf-8") &&
      path.listKey === "arguments" &&
      path.parentPath?.isCallExpression()
    ) {
      return "UTF-8 is Node's default encoding: an empty encoding argument means the same";
    }
    return undefined;
  }
}

export const strykerPlugins = [
  declareClassPlugin(PluginKind.Ignore, "Utf8Encoding", Utf8EncodingIgnorer),
];
