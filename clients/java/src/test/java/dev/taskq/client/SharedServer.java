package dev.taskq.client;

import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * One taskq server for the whole test run, started by the first test class that asks for it
 * (a {@link TaskqServer} parameter) and stopped, with SIGTERM, when the run ends. Tests share
 * it by using queues of their own ({@link Fixtures#queueId}).
 */
final class SharedServer implements ParameterResolver {
  @Override
  public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
    return parameter.getParameter().getType() == TaskqServer.class;
  }

  @Override
  public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
    return context.getRoot()
        .getStore(ExtensionContext.Namespace.create(SharedServer.class))
        .getOrComputeIfAbsent("server", key -> {
          try {
            return TaskqServer.start();
          } catch (Exception e) {
            throw new IllegalStateException(e);
          }
        }, TaskqServer.class);
  }
}
