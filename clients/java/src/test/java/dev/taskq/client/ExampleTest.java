package dev.taskq.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.taskq.example.Example;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The README's example is this compiled class, and it runs against a real server. */
@ExtendWith(SharedServer.class)
class ExampleTest {
  private static final Path SOURCE = Path.of("src/test/java/dev/taskq/example/Example.java");

  @Test
  void theExampleRunsToTheEnd(TaskqServer server) throws Exception {
    Example.main(new String[] {server.address()});
    try (TaskqClient client = TaskqClient.connect(server.address())) {
      assertEquals(0, client.getQueueStats("java-emails").getTasksCount());
      assertEquals(0, client.getQueueStats("java-reports").getTasksCount());
    }
  }

  @Test
  void theReadmeShowsTheExampleAsCompiled() throws Exception {
    String readme = Files.readString(Path.of("README.md"));
    Matcher block = Pattern.compile("```java\n(package dev\\.taskq\\.example;.*?)```",
        Pattern.DOTALL).matcher(readme);
    assertTrue(block.find(), "README.md has the example's source in a java block");
    assertEquals(Files.readString(SOURCE), block.group(1),
        "README.md's example differs from " + SOURCE + ": copy the file into the README");
  }
}
