// Package hdfs is the vocabulary of HDFS that kura's dfs shares between the
// namespace, the namenode, WebHDFS and the CLI: path rules, permissions and
// the permission checker, Hadoop's exception classes (with their WebHDFS
// status codes, JSON body and CLI message shapes) and the WebHDFS JSON
// shapes. Everything here is pure: no I/O, no package-level mutable state.
//
// The rules follow Apache Hadoop, read from its sources and documentation:
//
//   - paths: DFSUtil(Client).isValidName, FSDirectory.verifyMaxComponentLength
//     and verifyMaxDirItems, NameNodeRpcServer.checkPathLength, the
//     FSLimitException messages; hdfs-default.xml for the limits' defaults;
//   - permissions: fs/permission/FsPermission.java, FsAction.java,
//     PermissionParser.java, ChmodParser.java, UmaskParser.java;
//   - checks: hdfs/server/namenode/FSPermissionChecker.java and the FSDir*Op
//     classes that call it (which access each operation asks for);
//   - errors: hdfs/web/resources/ExceptionHandler.java (status codes),
//     hdfs/web/JsonUtil.java (the RemoteException body) and the "Error
//     Responses" section of the WebHDFS REST API documentation,
//     https://hadoop.apache.org/docs/stable/hadoop-project-dist/hadoop-hdfs/WebHDFS.html
//     (source: hadoop-hdfs-project/hadoop-hdfs/src/site/markdown/WebHDFS.md);
//   - the CLI's messages: fs/shell/PathExceptions.java and FsShell;
//   - JSON: the "JSON Schemas" section of the same WebHDFS page, and
//     JsonUtil.toJsonMap, whose TreeMaps emit keys in sorted order: the
//     structs here declare their fields in that order so that the bytes
//     match Hadoop's.
//
// Where kura deliberately differs from Hadoop the comment says so (for
// example, paths must be valid UTF-8 without NUL bytes, because PostgreSQL's
// text type cannot store NUL).
package hdfs
