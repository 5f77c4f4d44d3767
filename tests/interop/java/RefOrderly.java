// Orderly consumption with a second consumer joining mid-run. 8 orders are spread over
// the queues of a 4-queue topic by order id; each order's messages carry seq 0..N-1. One
// MessageListenerOrderly consumer starts, a second one of the same group joins after part
// of the messages were consumed (the queues are rebalanced between them), then the rest
// is sent. Reports: messages delivered per consumer, messages missing, and order breaks
// (a message delivered before its predecessor of the same order was).
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerOrderly;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

public class RefOrderly {
    static final int ORDERS = 8;
    static final int PER_ORDER = 60;
    static final Object LOCK = new Object();
    static final Map<Integer, Integer> NEXT = new HashMap<>(); // order -> next seq expected
    static final AtomicInteger BREAKS = new AtomicInteger();
    static final AtomicInteger DUPLICATES = new AtomicInteger();
    static final AtomicInteger TOTAL = new AtomicInteger();

    static DefaultMQPushConsumer consumer(String ns, String group, String topic, String name,
        AtomicInteger count) throws Exception {
        DefaultMQPushConsumer c = RefUtil.pushConsumer(ns, group);
        c.setInstanceName(name);
        c.setPersistConsumerOffsetInterval(1000);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerOrderly) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                String[] p = new String(m.getBody()).split(":");
                int order = Integer.parseInt(p[0]);
                int seq = Integer.parseInt(p[1]);
                synchronized (LOCK) {
                    int next = NEXT.getOrDefault(order, 0);
                    if (seq == next) {
                        NEXT.put(order, next + 1);
                        TOTAL.incrementAndGet();
                    } else if (seq < next) {
                        DUPLICATES.incrementAndGet();
                    } else {
                        BREAKS.incrementAndGet();
                        System.err.println("order " + order + ": seq " + seq + " before " + next);
                    }
                }
                count.incrementAndGet();
            }
            return ConsumeOrderlyStatus.SUCCESS;
        });
        c.start();
        return c;
    }

    static void send(DefaultMQProducer p, String topic, int from, int to) throws Exception {
        for (int seq = from; seq < to; seq++) {
            for (int order = 0; order < ORDERS; order++) {
                Message m = new Message(topic, "O", (order + ":" + seq).getBytes());
                SendResult r = p.send(m, (List<MessageQueue> mqs, Message msg, Object arg) ->
                    mqs.get((Integer) arg % mqs.size()), order);
                if (r.getSendStatus() != SendStatus.SEND_OK) {
                    throw new IllegalStateException("send " + r);
                }
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String ns = args[0];
        String topic = "JavaOrderly";
        String group = "CG_JAVA_ORDERLY";
        DefaultMQAdminExt admin = RefUtil.admin(ns);
        RefUtil.createTopic(admin, topic, 4);
        DefaultMQProducer p = RefUtil.producer(ns, "PG_JAVA_ORDERLY");
        AtomicInteger a = new AtomicInteger();
        AtomicInteger b = new AtomicInteger();
        DefaultMQPushConsumer ca = consumer(ns, group, topic, "orderly-a", a);
        send(p, topic, 0, PER_ORDER / 2);
        RefUtil.await(() -> a.get() >= ORDERS * PER_ORDER / 4, 20000);
        DefaultMQPushConsumer cb = consumer(ns, group, topic, "orderly-b", b);
        int bAtJoin = a.get();
        send(p, topic, PER_ORDER / 2, PER_ORDER);
        boolean all = RefUtil.await(() -> TOTAL.get() >= ORDERS * PER_ORDER, 60000);
        Thread.sleep(1000);
        RefUtil.result("consumedByFirstBeforeJoin", bAtJoin);
        RefUtil.result("first", a.get());
        RefUtil.result("second", b.get());
        RefUtil.result("delivered", TOTAL.get());
        RefUtil.result("expected", ORDERS * PER_ORDER);
        RefUtil.result("allDelivered", all);
        RefUtil.result("orderBreaks", BREAKS.get());
        RefUtil.result("duplicates", DUPLICATES.get());
        ca.shutdown();
        cb.shutdown();
        p.shutdown();
        admin.shutdown();
        System.exit(0);
    }
}
